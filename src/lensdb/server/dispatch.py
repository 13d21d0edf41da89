"""One place that turns a request (JSON text, blobs, session token) into a response.

TCP and HTTP both call it from worker threads: it checks the session and permissions,
answers access-control commands itself and hands everything else to the engine.
"""

from __future__ import annotations

import base64
import json
import logging
from typing import Any, Protocol

from lensdb.auth import commands as access
from lensdb.auth.service import AuthService
from lensdb.auth.store import AuthUnavailable
from lensdb.errors import failure
from lensdb.server import message

log = logging.getLogger(__name__)

PROBE_MAX_BYTES = 512


class QueryEngine(Protocol):
    def query(
        self, commands: Any, blobs: list[bytes] = ..., dialect: str = ...
    ) -> tuple[Any, list[bytes]]: ...


class QueryHandler:
    def __init__(self, db: QueryEngine, auth: AuthService) -> None:
        self.db = db
        self.auth = auth

    # -- dialects ----------------------------------------------------------------------

    def aperturedb(
        self, json_text: str, blobs: list[bytes], token: str | None
    ) -> tuple[Any, list[bytes]]:
        """ApertureDB dialect: session required except for Authenticate/RefreshToken."""
        try:
            return self._aperturedb(json_text, blobs, token)
        except AuthUnavailable as e:  # the shared user store is down: say so, keep the client
            log.warning("%s", e.info)
            return e.response(), []

    def _aperturedb(
        self, json_text: str, blobs: list[bytes], token: str | None
    ) -> tuple[Any, list[bytes]]:
        try:
            commands = json.loads(json_text)
        except ValueError:
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
            return access.run(self.auth, commands, names, principal), []
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

    def vdms(self, json_text: str, blobs: list[bytes]) -> tuple[Any, list[bytes]]:
        """VDMS dialect: no authentication exists in that protocol."""
        return self._engine(json_text, blobs, "vdms")

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
        if len(payload) > PROBE_MAX_BYTES or b"GetStatus" not in payload:
            return False
        try:
            commands = json.loads(message.decode(payload).json)
        except (message.MalformedMessage, ValueError):
            return False
        names = access.command_names(commands) if isinstance(commands, list) else None
        return bool(names) and all(n == "GetStatus" for n in names)

    def tcp_payload(self, payload: bytes, vdms: bool) -> bytes:
        """Decode a frame payload, run it, and return the response payload."""
        try:
            msg = message.decode(payload)
        except message.MalformedMessage:
            err = failure("Malformed message: not a queryMessage protobuf")
            return message.encode(
                _dumps([dict(err, FailedCommand="Transaction")] if vdms else err, vdms)
            )
        if vdms:
            response, blobs = self.vdms(msg.json, msg.blobs)
        else:
            response, blobs = self.aperturedb(msg.json, msg.blobs, msg.token)
        return message.encode(_dumps(response, vdms), blobs)

    def http_body(self, json_text: str, blobs: list[bytes], token: str | None) -> bytes:
        """The REST answer: {"json": response, "blobs": [base64, ...]}."""
        response, out = self.aperturedb(json_text, blobs, token)
        encoded = [base64.b64encode(b).decode("ascii") for b in out]
        return json.dumps({"json": response, "blobs": encoded}, default=str).encode("utf-8")


def _dumps(obj: Any, vdms: bool) -> str:
    # VDMS's own tests compare response text byte for byte against jsoncpp, which sorts keys.
    return json.dumps(obj, sort_keys=vdms, default=str)
