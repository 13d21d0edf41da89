"""What every gateway route shares: the server context, settings, the URL signer, query running, access."""

from __future__ import annotations

import asyncio
import os
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


@runtime_checkable
class MediaSources(Protocol):
    """What the engine offers the gateway beside queries: an object's blob found by one lookup
    (`lensdb.engine.database.MediaSource`: key, length, and the local file range or None)."""

    local_lookups: bool

    def media_source(self, cls: str, uniqueid: str) -> Any: ...
    def read_blob(self, key: str, offset: int = 0, length: int | None = None) -> bytes: ...


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

    async def media_source(self, cls: str, uniqueid: str) -> Any:
        """The blob of an `_Image` / `_Blob` by _uniqueid (None: not found); None also when the
        engine offers no lookups, and the caller falls back to a query (`has_sources`)."""
        sources = self.ctx.db
        if not isinstance(sources, MediaSources):
            return None
        if sources.local_lookups:
            return sources.media_source(cls, uniqueid)
        return await self.run(sources.media_source, cls, uniqueid)

    @property
    def has_sources(self) -> bool:
        return isinstance(self.ctx.db, MediaSources)

    async def read_part(self, source: Any, offset: int, length: int) -> bytes:
        """`length` bytes from `offset` within the blob: straight from its pack file's range when
        it lies on a local disk, else a ranged read from the store (object storage)."""
        if length <= 0:
            return b""
        if source.file is not None:
            path, start = source.file.path, source.file.offset + offset
            if length <= INLINE_READ:
                return _pread(path, start, length)
            return await self.run(_pread, path, start, length)
        sources = self.ctx.db
        assert isinstance(sources, MediaSources)
        return await self.run(sources.read_blob, source.key, offset, length)

    async def run(self, fn: Any, *args: Any) -> Any:
        """Run CPU-bound work (image rendering) off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self.ctx.executor, fn, *args)

    def base_url(self, request: Request) -> str:
        if self.config.public_url:
            return self.config.public_url
        return str(request.base_url).rstrip("/")

    def session(self, request: Request) -> Principal | None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return self.ctx.auth.principal(token.strip())

    def authorize(
        self, request: Request, commands: list[str], allow_signed: bool = True
    ) -> Access | Response:
        """A session allowed to run `commands`, or (for media) a valid signed link to this very URL."""
        if allow_signed and any(k == SIGNATURE for k, _ in request.query_params.multi_items()):
            items = request.query_params.multi_items()
            why = self.signer.check(request.url.path, items)
            if why:
                return error(
                    403,
                    f"Signed link refused ({why}). Ask for a new link, e.g. a fresh task "
                    "list from /labelstudio/tasks.",
                )
            return Access(None, self.signer.remaining(items))
        if not request.headers.get("authorization"):
            return error(
                401,
                "Send 'Authorization: Bearer <session token>' (from Authenticate) "
                "or use a signed link.",
                **{"WWW-Authenticate": "Bearer"},
            )
        principal = self.session(request)
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


def _pread(path: str, offset: int, length: int) -> bytes:
    """The range of a pack file; FileNotFoundError when the pack went away (deleted, compacted)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        data = os.pread(fd, length, offset)
        while len(data) < length:  # reads of over 2 GB come back in parts
            more = os.pread(fd, length - len(data), offset + len(data))
            if not more:
                raise FileNotFoundError(path)  # shorter than the row says: treat as gone
            data += more
        return data
    finally:
        os.close(fd)
