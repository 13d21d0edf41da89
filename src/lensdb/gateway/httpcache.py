"""HTTP caching and partial content for media: strong ETags, If-None-Match, Range, If-Range.

The rules work on `Conditions` (the request headers they read) and produce an `Answer` (status,
headers, body), not on Starlette objects, so that the Starlette routes and the raw /media front
(`gateway/front.py`) answer by the same code.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from lensdb.media.ranges import parse_range


def strong_etag(*parts: bytes | str) -> str:
    h = hashlib.blake2b(digest_size=16)
    for p in parts:
        h.update(p.encode() if isinstance(p, str) else p)
        h.update(b"\0")
    return f'"{h.hexdigest()}"'


@dataclass(frozen=True, slots=True)
class Conditions:
    """The request headers that decide between 200, 206, 304 and 416 (None when absent)."""

    if_none_match: str | None = None
    range: str | None = None
    if_range: str | None = None

    @classmethod
    def of(cls, request: Request) -> Conditions:
        h = request.headers
        return cls(h.get("if-none-match"), h.get("range"), h.get("if-range"))


@dataclass(frozen=True, slots=True)
class Answer:
    """A media answer before it becomes a response. `headers` have lower-case names;
    `content_type` None sends none (304, 416)."""

    status: int
    headers: dict[str, str]
    body: bytes = b""
    content_type: str | None = None

    def response(self) -> Response:
        return Response(self.body, self.status, headers=self.headers, media_type=self.content_type)

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """The header list `response()` carries (Starlette's rules: a Content-Length except on
        304, the content type last), built directly for the raw ASGI front."""
        raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in self.headers.items()]
        if self.status != 304:
            raw.append((b"content-length", b"%d" % len(self.body)))
        if self.content_type is not None:
            raw.append((b"content-type", self.content_type.encode("latin-1")))
        return raw


def _etags(header: str) -> list[str]:
    return [t.strip().removeprefix("W/") for t in header.split(",") if t.strip()]


def not_modified(conditions: Conditions, etag: str) -> bool:
    header = conditions.if_none_match
    if not header:
        return False
    tags = _etags(header)
    return "*" in tags or etag in tags


def not_modified_answer(etag: str, cache_control: str) -> Answer:
    return Answer(304, {"etag": etag, "cache-control": cache_control})


def media_answer(
    conditions: Conditions, data: bytes, content_type: str, etag: str, cache_control: str
) -> Answer:
    """200, 206 or 416 for in-memory `data`, honouring Range and If-Range."""
    wanted = wanted_range(conditions, len(data), etag)
    first, last = wanted or (0, len(data) - 1)
    return ranged_answer(
        wanted, data[first : last + 1], len(data), content_type, etag, cache_control
    )


def media_response(
    request: Request, data: bytes, content_type: str, etag: str, cache_control: str
) -> Response:
    return media_answer(Conditions.of(request), data, content_type, etag, cache_control).response()


def wanted_range(conditions: Conditions, size: int, etag: str) -> tuple[int, int] | None | bool:
    """The byte range to send: (first, last), None for all of it, False when unsatisfiable."""
    if_range = conditions.if_range
    if if_range is not None and if_range.strip() != etag:
        return None  # the client holds another version: send it whole
    return parse_range(conditions.range, size)


def ranged_answer(
    wanted: tuple[int, int] | None | bool,
    part: bytes,
    size: int,
    content_type: str,
    etag: str,
    cache_control: str,
) -> Answer:
    """The answer for `part`, the bytes `wanted` (from `wanted_range`) chose out of a blob of
    `size` bytes."""
    headers = {"etag": etag, "cache-control": cache_control, "accept-ranges": "bytes"}
    if wanted is False:
        headers["content-range"] = f"bytes */{size}"
        return Answer(416, headers)
    if wanted is None or wanted == (0, size - 1):
        return Answer(200, headers, part, content_type)
    first, last = wanted
    headers["content-range"] = f"bytes {first}-{last}/{size}"
    return Answer(206, headers, part, content_type)
