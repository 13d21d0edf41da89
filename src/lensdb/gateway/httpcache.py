"""HTTP caching and partial content for in-memory media: strong ETags, If-None-Match, Range, If-Range."""

from __future__ import annotations

import hashlib

from starlette.requests import Request
from starlette.responses import Response

from lensdb.media.ranges import parse_range


def strong_etag(*parts: bytes | str) -> str:
    h = hashlib.blake2b(digest_size=16)
    for p in parts:
        h.update(p.encode() if isinstance(p, str) else p)
        h.update(b"\0")
    return f'"{h.hexdigest()}"'


def _etags(header: str) -> list[str]:
    return [t.strip().removeprefix("W/") for t in header.split(",") if t.strip()]


def not_modified(request: Request, etag: str) -> bool:
    header = request.headers.get("if-none-match")
    if not header:
        return False
    tags = _etags(header)
    return "*" in tags or etag in tags


def media_response(
    request: Request, data: bytes, content_type: str, etag: str, cache_control: str
) -> Response:
    """200, 206 or 416 for `data`, honouring Range and If-Range."""
    first, last = wanted_range(request, len(data), etag) or (0, len(data) - 1)
    return ranged_response(
        request, data[first : last + 1], len(data), content_type, etag, cache_control
    )


def wanted_range(request: Request, size: int, etag: str) -> tuple[int, int] | None | bool:
    """The byte range to send: (first, last), None for all of it, False when unsatisfiable."""
    wanted = parse_range(request.headers.get("range"), size)
    if_range = request.headers.get("if-range")
    if if_range is not None and if_range.strip() != etag:
        return None  # the client holds another version: send it whole
    return wanted


def ranged_response(
    request: Request, part: bytes, size: int, content_type: str, etag: str, cache_control: str
) -> Response:
    """The answer for `part`, the bytes `wanted_range` chose out of a blob of `size` bytes."""
    headers = {"ETag": etag, "Cache-Control": cache_control, "Accept-Ranges": "bytes"}
    wanted = wanted_range(request, size, etag)
    if wanted is False:
        headers["Content-Range"] = f"bytes */{size}"
        return Response(b"", 416, headers=headers)
    if wanted is None or wanted == (0, size - 1):
        return Response(part, 200, headers=headers, media_type=content_type)
    first, last = wanted
    headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    return Response(part, 206, headers=headers, media_type=content_type)
