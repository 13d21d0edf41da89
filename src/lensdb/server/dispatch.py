"""One place that turns a request (JSON text, blobs, session token) into a response.

TCP and HTTP both call it from worker threads: it checks the session and permissions,
answers access-control commands itself and hands everything else to the engine.
"""

from __future__ import annotations

import base64
import json
import logging
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Protocol

from lensdb.auth import commands as access
from lensdb.auth import permissions
from lensdb.auth.service import AuthService
from lensdb.auth.store import AuthUnavailable
from lensdb.errors import failure
from lensdb.server import message

log = logging.getLogger(__name__)

PROBE_MAX_BYTES = 512


LOGIN_MAX_BYTES = 4096
DEFAULT_MAX_QUERY_BYTES = 16 * 2**20


class QueryEngine(Protocol):
    def query(
        self, commands: Any, blobs: list[bytes] = ..., dialect: str = ...
    ) -> tuple[Any, list[bytes]]: ...


@dataclass(frozen=True)
class Request:
    """One TCP frame payload and who sent it.

    `vdms` is None for ApertureDB clients, else what the VDMS connection may do: "read" or
    "write" (VDMS has no login; the transport decided from its certificate or the settings).
    """

    payload: bytes
    address: str | None = None
    vdms: str | None = None


class QueryHandler:
    def __init__(
        self,
        db: QueryEngine,
        auth: AuthService,
        login_executor: Executor | None = None,
        max_query_bytes: int = DEFAULT_MAX_QUERY_BYTES,
    ) -> None:
        self.db = db
        self.auth = auth
        # Logins hash a password with argon2 (64 MiB, ~0.1 s each): they run in this small pool,
        # so a flood of guesses cannot take the query threads (or 64 MiB per thread of memory).
        self.login_executor = login_executor
        self.max_query_bytes = max_query_bytes

    # -- dialects ----------------------------------------------------------------------

    def aperturedb(
        self,
        json_text: str,
        blobs: list[bytes],
        token: str | None,
        address: str | None = None,
    ) -> tuple[Any, list[bytes]]:
        """ApertureDB dialect: session required except for Authenticate/RefreshToken."""
        too_big = self._too_big(json_text)
        if too_big is not None:
            return too_big, []
        try:
            return self._aperturedb(json_text, blobs, token, address)
        except AuthUnavailable as e:  # the shared user store is down: say so, keep the client
            log.warning("%s", e.info)
            return e.response(), []

    def _aperturedb(
        self, json_text: str, blobs: list[bytes], token: str | None, address: str | None
    ) -> tuple[Any, list[bytes]]:
        try:
            commands = json.loads(json_text)
        except (ValueError, RecursionError):  # the engine words the error (nesting included)
            commands = None
        names = access.command_names(commands) if isinstance(commands, list) else None
        if names and any(n in access.COMMANDS for n in names):
            if not all(n in access.COMMANDS for n in names):
                return failure(
                    "User, role and token commands cannot share a query with data commands"
                ), []
            principal = None
            if access.needs_session(names):
                principal = self.auth.principal(token)
                if principal is None:
                    return dict(access.NOT_AUTHENTICATED), []
            return access.run(self.auth, commands, names, principal, address), []
        principal = self.auth.principal(token)
        if principal is None:
            return dict(access.NOT_AUTHENTICATED), []
        if names is None:
            # Malformed query: let the engine word the error.
            return self._engine(json_text, blobs, "aperturedb")
        denied = self.auth.denied(principal, names)
        if denied:
            return failure(denied), []
        return self._engine(commands, blobs, "aperturedb")

    def vdms(
        self, json_text: str, blobs: list[bytes], writes: bool = True
    ) -> tuple[Any, list[bytes]]:
        """VDMS dialect: no authentication exists in that protocol; `writes` False: read-only."""
        too_big = self._too_big(json_text)
        if too_big is not None:
            return [dict(too_big, FailedCommand="Transaction")], []
        if not writes:
            try:
                commands = json.loads(json_text)
            except (ValueError, RecursionError):
                commands = None
            names = access.command_names(commands) if isinstance(commands, list) else None
            changing = [n for n in names or () if not _reads_only(n)]
            if changing:
                err = failure(
                    f"Permission denied: unauthenticated VDMS clients are read-only ({changing[0]});"
                    " nothing was changed. Use a client certificate (--vdms-client-ca) or "
                    "the ApertureDB protocol with a login"
                )
                return [dict(err, FailedCommand=changing[0])], []
        return self._engine(json_text, blobs, "vdms")

    def _too_big(self, json_text: str) -> dict | None:
        if len(json_text) <= self.max_query_bytes:
            return None
        return failure(
            f"Query text of {len(json_text)} bytes exceeds the server limit of "
            f"{self.max_query_bytes} bytes (lensdb serve --max-query-mb)"
        )

    def _engine(self, commands: Any, blobs: list[bytes], dialect: str) -> tuple[Any, list[bytes]]:
        try:
            return self.db.query(commands, blobs, dialect=dialect)
        except Exception as e:  # the engine should answer errors itself; never drop the client
            log.exception("engine raised on a query")
            err = failure(f"Internal error: {type(e).__name__}: {e}")
            if dialect == "vdms":
                return [dict(err, FailedCommand="Transaction")], []
            return err, []

    # -- transport-ready answers -------------------------------------------------------

    @staticmethod
    def is_probe(payload: bytes) -> bool:
        """A small query made only of GetStatus: a liveness probe with no database work.

        Transports answer these on the event loop, so probes stay fast (and honest about
        the server being alive) even while every worker thread is busy.
        """
        return _only(payload, PROBE_MAX_BYTES, "GetStatus") is not None

    def pool_for(self, payload: bytes, default: Executor) -> Executor:
        """The login pool for a login (Authenticate alone), else `default`."""
        if self.login_executor is not None and is_login_payload(payload):
            return self.login_executor
        return default

    def tcp_payload(self, request: Request) -> bytes:
        """Decode a frame payload, run it, and return the response payload."""
        vdms = request.vdms is not None
        try:
            msg = message.decode(request.payload)
        except message.MalformedMessage:
            err = failure("Malformed message: not a queryMessage protobuf")
            return message.encode(
                _dumps([dict(err, FailedCommand="Transaction")] if vdms else err, vdms)
            )
        try:
            if vdms:
                response, blobs = self.vdms(msg.json, msg.blobs, writes=request.vdms == "write")
            else:
                response, blobs = self.aperturedb(msg.json, msg.blobs, msg.token, request.address)
            return message.encode(_dumps(response, vdms), blobs)
        except Exception as e:  # answer rather than drop the connection (the SDK would resend)
            log.exception("a query could not be answered")
            err = failure(f"Internal error: {type(e).__name__}")
            return message.encode(
                _dumps([dict(err, FailedCommand="Transaction")] if vdms else err, vdms)
            )

    def http_body(
        self, json_text: str, blobs: list[bytes], token: str | None, address: str | None = None
    ) -> bytes:
        """The REST answer: {"json": response, "blobs": [base64, ...]}."""
        try:
            response, out = self.aperturedb(json_text, blobs, token, address)
            encoded = [base64.b64encode(b).decode("ascii") for b in out]
            return json.dumps({"json": response, "blobs": encoded}, default=str).encode("utf-8")
        except Exception as e:
            log.exception("a query could not be answered")
            err = failure(f"Internal error: {type(e).__name__}")
            return json.dumps({"json": err, "blobs": []}).encode("utf-8")


def is_login_text(json_text: str) -> bool:
    """A query that is Authenticate alone (small): it goes to the login pool."""
    return (
        len(json_text) <= LOGIN_MAX_BYTES
        and "Authenticate" in json_text
        and _names(json_text) == ["Authenticate"]
    )


def is_login_payload(payload: bytes) -> bool:
    return _only(payload, LOGIN_MAX_BYTES, "Authenticate") is not None


def _only(payload: bytes, max_bytes: int, name: str) -> list[str] | None:
    """The command names of a small payload made only of `name` commands, else None."""
    if len(payload) > max_bytes or name.encode() not in payload:
        return None
    try:
        names = _names(message.decode(payload).json)
    except message.MalformedMessage:
        return None
    return names if names and all(n == name for n in names) else None


def _names(json_text: str) -> list[str] | None:
    try:
        commands = json.loads(json_text)
    except (ValueError, RecursionError):
        return None
    return access.command_names(commands) if isinstance(commands, list) else None


def _reads_only(name: str) -> bool:
    need = permissions.required(name)
    return need is None or need[1] == "read"


def _dumps(obj: Any, vdms: bool) -> str:
    # VDMS's own tests compare response text byte for byte against jsoncpp, which sorts keys.
    return json.dumps(obj, sort_keys=vdms, default=str)
