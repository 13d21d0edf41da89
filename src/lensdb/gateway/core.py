"""What every gateway route shares: the server context, settings, the URL signer, query running, access."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from lensdb.auth.service import Principal
from lensdb.errors import LensdbError, Status, error_info, failure, response_status
from lensdb.gateway.config import GatewayConfig
from lensdb.gateway.signing import SIGNATURE, Signer
from lensdb.server.context import ServerContext


def error(status: int, message: str, **headers: str) -> Response:
    """A JSON error that says what to do."""
    return JSONResponse(failure(message), status_code=status, headers=headers or None)


class QueryFailed(LensdbError):
    """The engine refused a gateway query; `response` is its answer."""

    def __init__(self, response: Any) -> None:
        super().__init__(error_info(response), response_status(response))
        self.response = response


class MediaSource(Protocol):
    """One object's blob (`lensdb.engine.database.MediaSource`): `key` names the bytes (a new
    key whenever they change), `file` is not None when they lie in a local file, and `read`
    reads a range of them (raising a LookupError once they are gone)."""

    key: str
    length: int
    file: object | None

    def read(self, offset: int, length: int) -> bytes: ...

    def url(self, seconds: int, content_type: str | None) -> str | None: ...


@runtime_checkable
class MediaSources(Protocol):
    """What the engine offers the gateway beside queries: an object's blob found by one lookup."""

    local_lookups: bool

    def media_source(self, cls: str, uniqueid: str) -> MediaSource | None: ...


# Parts up to this size are read on the event loop: a pread of a cached 64 KB range takes about
# 10 us, less than handing it to a thread. Larger ones are read in the worker pool.
INLINE_READ = 256 * 1024


@dataclass
class Access:
    """Who is asking: a session's principal, or a valid signed link (principal None)."""

    principal: Principal | None
    signed_seconds_left: int | None = None


class Gateway:
    def __init__(self, ctx: ServerContext, config: GatewayConfig) -> None:
        self.ctx = ctx
        self.config = config
        self.signer = Signer(config.signing_secret)
        # Decided once: an isinstance check against a runtime Protocol took 4% of a media
        # request's time (py-spy), and neither the engine nor its store changes.
        db = ctx.db
        self._sources: MediaSources | None = db if isinstance(db, MediaSources) else None
        self._lookups_inline = self._sources is not None and self._sources.local_lookups

    async def query(
        self, commands: list[dict], blobs: list[bytes] | None = None
    ) -> tuple[list, list[bytes]]:
        """Run one transaction on the engine in the server's worker pool; QueryFailed when refused."""
        loop = asyncio.get_running_loop()
        response, out = await loop.run_in_executor(
            self.ctx.executor, self.ctx.db.query, commands, blobs or []
        )
        if not isinstance(response, list) or response_status(response) < Status.OK:
            raise QueryFailed(response)
        return response, out

    async def media_source(self, cls: str, uniqueid: str) -> MediaSource | None:
        """The blob of an `_Image` / `_Blob` by _uniqueid (None: not found); None also when the
        engine offers no lookups, and the caller falls back to a query (`has_sources`)."""
        sources = self._sources
        if sources is None:
            return None
        if self._lookups_inline:
            return sources.media_source(cls, uniqueid)
        return await self.run(sources.media_source, cls, uniqueid)

    @property
    def has_sources(self) -> bool:
        return self._sources is not None

    async def read_part(self, source: MediaSource, offset: int, length: int) -> bytes:
        """`length` bytes from `offset` within the blob: straight from its pack file's range when
        it lies on a local disk (on the event loop when small), else a ranged read from the
        store (object storage) in the worker pool."""
        if length <= 0:
            return b""
        if source.file is not None and length <= INLINE_READ:
            return source.read(offset, length)
        return await self.run(source.read, offset, length)

    async def run(self, fn: Any, *args: Any) -> Any:
        """Run CPU-bound work (image rendering) off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self.ctx.executor, fn, *args)

    def base_url(self, request: Request) -> str:
        if self.config.public_url:
            return self.config.public_url
        return str(request.base_url).rstrip("/")

    def session(self, request: Request) -> Principal | None:
        return self._principal(request.headers.get("authorization"))

    def _principal(self, authorization: str | None) -> Principal | None:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return self.ctx.auth.principal(token.strip())

    def authorize(
        self, request: Request, commands: list[str], allow_signed: bool = True
    ) -> Access | Response:
        """A session allowed to run `commands`, or (for media) a valid signed link to this very URL."""
        return self.check_access(
            request.url.path,
            request.query_params.multi_items(),
            request.headers.get("authorization"),
            commands,
            allow_signed,
        )

    def check_access(
        self,
        path: str,
        params: list[tuple[str, str]],
        authorization: str | None,
        commands: list[str],
        allow_signed: bool = True,
    ) -> Access | Response:
        """`authorize` on the parts of a request it reads: the URL path, the query parameters
        in order and the Authorization header (the raw /media front has no Request)."""
        if allow_signed and any(k == SIGNATURE for k, _ in params):
            why = self.signer.check(path, params)
            if why:
                return error(
                    403,
                    f"Signed link refused ({why}). Ask for a new link, e.g. a fresh task "
                    "list from /labelstudio/tasks.",
                )
            return Access(None, self.signer.remaining(params))
        if not authorization:
            return error(
                401,
                "Send 'Authorization: Bearer <session token>' (from Authenticate) "
                "or use a signed link.",
                **{"WWW-Authenticate": "Bearer"},
            )
        principal = self._principal(authorization)
        if principal is None:
            return error(
                401,
                "The session token is unknown or expired: log in again (Authenticate) "
                "or refresh it (RefreshToken).",
                **{"WWW-Authenticate": "Bearer"},
            )
        denied = self.ctx.auth.denied(principal, commands)
        if denied:
            return error(403, denied)
        return Access(principal)
