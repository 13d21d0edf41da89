"""GET/HEAD /media/images/{uid} and /media/blobs/{uid} as a raw ASGI front (`server.extensions.Front`).

These are the requests Label Studio makes for every task image, and they need none of the
Starlette machinery: the front reads the scope itself, checks access with the same
`Gateway.check_access`, answers with the same `media.stored_answer` and adds the same CORS
headers as the /media routes. Anything else, and anything that is not a success (a refused link,
no session, not found, a transform, a request with a body), it declines: the request then goes
through the app as before, which writes the error. So there is one implementation of every rule
and the front only takes a shorter way to it.

Measured on bench/connector.py's gateway set (wrk, 32 keep-alive connections, signed links to
1,000 JPEGs of 10 KB), one server process, as CPU time of the server per request (throughput
on this shared 2-core machine varies twice over between runs; CPU per request does not): 143 us
before (Starlette routes, two writes per response), 112-118 us with one write per response but
without this front, 59 us with both (server/onewrite.py). py-spy then puts a third of the time in
the one `writev` per response (the kernel's loopback send), the rest spread over uvicorn's
request parsing, the lookup (SQLite, about 7%) and the pread (about 5%).
"""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from typing import Any
from urllib.parse import parse_qsl

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware

from lensdb.gateway.core import Access, Gateway
from lensdb.gateway.httpcache import Conditions
from lensdb.gateway.media import TRANSFORMS, cache_control, stored_answer
from lensdb.server.extensions import Front, Send

PREFIX = "/media/"
# route segment -> (class, commands a session needs), as the /media routes check them
_KINDS = {"images": ("_Image", ["FindImage"]), "blobs": ("_Blob", ["FindBlob"])}
# A _uniqueid's characters: a path with anything else (escapes, '?', ...) goes the ordinary way.
_UID = re.compile(r"[0-9A-Za-z._-]{1,64}\Z")
_READ = {
    b"authorization",
    b"if-none-match",
    b"range",
    b"if-range",
    b"origin",
    b"content-length",
    b"transfer-encoding",
}
# Origins seen, each with the CORS headers the middleware adds for it; cleared when it grows
# past this (origins are few; a client inventing one per request only costs recomputing).
_CORS_CACHE = 64

Headerlist = list[tuple[bytes, bytes]]


class MediaFront:
    """The front's answer callable (see the module docstring)."""

    def __init__(self, gw: Gateway, cors: CORSMiddleware) -> None:
        self.gw = gw
        self.cors = cors
        self._cors_headers: dict[bytes | None, Headerlist] = {}

    async def __call__(self, scope: MutableMapping[str, Any], send: Send) -> bool:
        if scope["method"] not in ("GET", "HEAD"):
            return False
        path: str = scope["path"]
        kind, _, uid = path[len(PREFIX) :].partition("/")
        target = _KINDS.get(kind)
        if target is None or not _UID.match(uid):
            return False
        found: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            if name in _READ and name not in found:  # the first of each, as Starlette reads them
                found[name] = value
        if found.get(b"content-length", b"0") != b"0" or b"transfer-encoding" in found:
            return False
        params = parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
        if any(k in TRANSFORMS for k, _ in params):
            return False
        cls, commands = target
        access = self.gw.check_access(path, params, _text(found, b"authorization"), commands)
        if not isinstance(access, Access):
            return False
        conditions = Conditions(
            _text(found, b"if-none-match"), _text(found, b"range"), _text(found, b"if-range")
        )
        answer = await stored_answer(self.gw, cls, uid, cache_control(access), conditions)
        if answer is None:
            return False
        headers = answer.raw_headers() + await self._cors(found.get(b"origin"))
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": answer.body})
        return True

    async def _cors(self, origin: bytes | None) -> Headerlist:
        """The headers the /media routes' CORS middleware adds for this Origin, found by letting
        it add them to an empty response once (its rules depend on the Origin alone)."""
        known = self._cors_headers.get(origin)
        if known is not None:
            return known
        sent: list[MutableMapping[str, Any]] = []

        async def keep(message: MutableMapping[str, Any]) -> None:
            sent.append(message)

        request = Headers(raw=[(b"origin", origin)] if origin is not None else [])
        await self.cors.send({"type": "http.response.start", "headers": []}, keep, request)
        headers = list(sent[0]["headers"])
        if len(self._cors_headers) >= _CORS_CACHE:
            self._cors_headers.clear()
        self._cors_headers[origin] = headers
        return headers


def _text(found: dict[bytes, bytes], name: bytes) -> str | None:
    value = found.get(name)
    return None if value is None else value.decode("latin-1")


def media_front(gw: Gateway, cors: CORSMiddleware) -> Front:
    return Front(PREFIX, MediaFront(gw, cors))
