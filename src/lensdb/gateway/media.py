"""GET /media/...: images (by _uniqueid or by a guid property), region crops and blobs.

Optional parameters on images and regions: `width`, `height` (resize; one alone keeps the aspect
ratio), `crop=x,y,w,h` (pixels of the stored image, images only) and `format=jpg|png`.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from lensdb import media
from lensdb.gateway.core import Access, Gateway, MediaSource, QueryFailed, error
from lensdb.gateway.httpcache import (
    Answer,
    Conditions,
    media_response,
    not_modified,
    not_modified_answer,
    ranged_answer,
    strong_etag,
    wanted_range,
)
from lensdb.media import content_type

_PROPERTY = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,99}$")
_REGIONS = {"boxes": ("FindBoundingBox", "bounding box"), "polygons": ("FindPolygon", "polygon")}
MAX_CACHE_SECONDS = 86400


class Variant:
    """The transformation asked for in the query string, validated."""

    def __init__(self, request: Request, allow_crop: bool) -> None:
        q = request.query_params
        self.ops: list[dict] = []
        self.crop: tuple[int, int, int, int] | None = None
        size = {k: _positive(q[k], k) for k in ("width", "height") if q.get(k)}
        if "crop" in q:
            if not allow_crop:
                raise media.MediaError("crop applies to images; a region is already cropped")
            parts = q["crop"].split(",")
            if len(parts) != 4:
                raise media.MediaError(
                    "crop must be x,y,width,height in pixels, e.g. crop=10,20,100,80"
                )
            x, y = (_non_negative(p, "crop") for p in parts[:2])
            w, h = (_positive(p, "crop") for p in parts[2:])
            self.crop = (x, y, w, h)
        if size:
            self.ops.append({"type": "resize", **size})
        self.format = media.encode_format(q["format"]) if q.get("format") else None
        self.key = f"w={size.get('width')};h={size.get('height')};c={self.crop};f={self.format}"

    @property
    def identity(self) -> bool:
        return not self.ops and self.crop is None and self.format is None


# Parameters that ask for a resize, crop or format: the engine renders those (and checks them).
TRANSFORMS = ("width", "height", "crop", "format")


def _transformed(request: Request) -> bool:
    q = request.query_params
    return any(k in q for k in TRANSFORMS)


def _positive(text: str, name: str) -> int:
    if not text.strip().isdigit() or int(text) < 1 or int(text) > 20000:
        raise media.MediaError(f"{name} must be a whole number of pixels from 1 to 20000")
    return int(text)


def _non_negative(text: str, name: str) -> int:
    if not text.strip().isdigit():
        raise media.MediaError(f"{name} must be whole numbers of pixels")
    return int(text)


def cache_control(access: Access) -> str:
    if access.signed_seconds_left is not None:
        return f"private, max-age={min(access.signed_seconds_left, MAX_CACHE_SECONDS)}"
    # Session access: the browser must ask again (cheap with the ETag) so a revoked session stops working.
    return "private, no-cache"


def _lookup_values(value: str) -> list[Any]:
    out: list[Any] = [value]
    try:
        number = int(value)
        out.append(number)
    except ValueError:
        try:
            out.append(float(value))
        except ValueError:
            pass
    return out


async def _fetch(gw: Gateway, command: str, constraints: dict, what: str) -> bytes | Response:
    find = {
        "constraints": constraints,
        "blobs": True,
        "uniqueids": True,
        "limit": 1,
        "results": {"count": True},
    }
    try:
        response, blobs = await gw.query([{command: find}])
    except QueryFailed as exc:
        return error(400, f"could not look up the {what}: {exc}")
    found = response[0][command]
    if found.get("count", 0) > 1:
        return error(
            409,
            f"{found['count']} objects match this {what}; use a property whose values are unique, "
            "or the _uniqueid",
        )
    if not blobs:
        return error(
            404,
            f"no {what} here: check the id (lensdb _uniqueid, e.g. 2.0.17) or the property value",
        )
    return blobs[0]


async def _serve_image(
    gw: Gateway, request: Request, access: Access, constraints: dict
) -> Response:
    try:
        variant = Variant(request, allow_crop=True)
    except media.MediaError as exc:
        return error(400, str(exc))
    data = await _fetch(gw, "FindImage", constraints, "image")
    if isinstance(data, Response):
        return data
    etag = strong_etag(data, variant.key)
    cache = cache_control(access)
    if not_modified(Conditions.of(request), etag):
        # Answered before any rendering: the tag is derived from the stored bytes and the variant.
        return not_modified_answer(etag, cache).response()
    if not variant.identity:
        try:
            data = await gw.run(media.render, data, variant.ops, variant.format, variant.crop)
        except media.MediaError as exc:
            return error(400, str(exc))
    return media_response(request, data, content_type(data[:16]), etag, cache)


_NOT_FOUND = "no {what} here: check the id (lensdb _uniqueid, e.g. 2.0.17) or the property value"


async def stored_answer(
    gw: Gateway, cls: str, uid: str, cache: str, conditions: Conditions
) -> Answer | None:
    """The stored bytes as they are, found by one lookup and read only for the range sent; None
    when there is no such object (or its bytes went away twice).

    This is the gateway's hot path (every image Label Studio shows), answered by the /media
    front (`front.py`) and the Starlette route alike: no query is parsed and the blob is never
    read whole for a Range request. A pack that went away between the lookup and the read (a
    delete, or compaction moving the blob) is looked up once more.
    """
    for _ in range(2):
        source = await gw.media_source(cls, uid)
        if source is None:
            return None
        etag = strong_etag(source.key)
        if not_modified(conditions, etag):
            return not_modified_answer(etag, cache)
        size = source.length
        if gw.config.media_redirect and source.file is None:
            try:
                moved = await _redirect(gw, source)
            except (OSError, LookupError):
                continue
            if moved is not None:
                return moved
        wanted = wanted_range(conditions, size, etag)
        if wanted is False:
            return ranged_answer(wanted, b"", size, "", etag, cache)
        first, last = wanted or (0, size - 1)
        try:
            part = await gw.read_part(source, first, last - first + 1)
            head = part[:16] if first == 0 else await gw.read_part(source, 0, min(16, size))
        except (OSError, LookupError):
            continue
        return ranged_answer(wanted, part, size, content_type(head), etag, cache)
    return None


# How long a presigned URL of --media-redirect stays valid: long enough for a slow client to
# follow it and read a video by ranges, short enough that a link shared by mistake dies soon.
REDIRECT_SECONDS = 900
# blob key -> content type, for redirects (see `_redirect`); cleared when it grows past this
_REDIRECT_TYPES: dict[str, str] = {}
_REDIRECT_TYPES_KEPT = 65_536


async def _redirect(gw: Gateway, source: MediaSource) -> Answer | None:
    """307 to a presigned URL of the object store (`--media-redirect`), which then serves the
    bytes, ranges included (the client sends its Range header again); None when the blob shares
    its object with others. The first 16 bytes give the content type the store answers with.
    Never cached: the URL expires. The type is kept per key (the bytes a key names never
    change), so a blob's first bytes are read from the store once, not on every request."""
    kind = _REDIRECT_TYPES.get(source.key)
    if kind is None:
        kind = content_type(await gw.read_part(source, 0, min(16, source.length)))
        if len(_REDIRECT_TYPES) >= _REDIRECT_TYPES_KEPT:
            _REDIRECT_TYPES.clear()
        _REDIRECT_TYPES[source.key] = kind
    url = await gw.run(source.url, REDIRECT_SECONDS, kind)
    if url is None:
        return None
    return Answer(307, {"location": url, "cache-control": "no-store"})


async def _serve_stored(
    gw: Gateway, request: Request, access: Access, cls: str, uid: str, what: str
) -> Response:
    answer = await stored_answer(gw, cls, uid, cache_control(access), Conditions.of(request))
    if answer is None:
        return error(404, _NOT_FOUND.format(what=what))
    return answer.response()


async def _serve_region(gw: Gateway, request: Request, command: str, what: str) -> Response:
    access = gw.authorize(request, [command, "FindImage"])
    if isinstance(access, Response):
        return access
    try:
        variant = Variant(request, allow_crop=False)
    except media.MediaError as exc:
        return error(400, str(exc))
    # The engine cuts the region out of its image (and applies the resize / format).
    find: dict[str, Any] = {
        "constraints": {"_uniqueid": ["==", request.path_params["uniqueid"]]},
        "blobs": True,
        "limit": 1,
    }
    if variant.ops:
        find["operations"] = variant.ops
    if variant.format:
        find["as_format"] = variant.format
    try:
        _, blobs = await gw.query([{command: find}])
    except QueryFailed as exc:
        return error(400, f"could not cut out the {what}: {exc}")
    if not blobs:
        return error(404, f"no {what} with this _uniqueid")
    return _answer(request, access, blobs[0], strong_etag(blobs[0]))


def _answer(request: Request, access: Access, data: bytes, etag: str) -> Response:
    cache = cache_control(access)
    if not_modified(Conditions.of(request), etag):
        return not_modified_answer(etag, cache).response()
    return media_response(request, data, content_type(data[:16]), etag, cache)


def routes(gw: Gateway) -> list[BaseRoute]:
    """Routes relative to the /media mount."""

    async def image(request: Request) -> Response:
        access = gw.authorize(request, ["FindImage"])
        if isinstance(access, Response):
            return access
        uid = request.path_params["uniqueid"]
        if gw.has_sources and not _transformed(request):
            return await _serve_stored(gw, request, access, "_Image", uid, "image")
        return await _serve_image(gw, request, access, {"_uniqueid": ["==", uid]})

    async def image_by(request: Request) -> Response:
        access = gw.authorize(request, ["FindImage"])
        if isinstance(access, Response):
            return access
        prop = request.path_params["prop"]
        if not _PROPERTY.match(prop):
            return error(
                400, "the property name must be letters, digits and _ (not starting with _)"
            )
        values = _lookup_values(request.path_params["value"])
        return await _serve_image(gw, request, access, {prop: ["in", values]})

    def region_handler(kind: str):  # noqa: ANN202 - builds a route endpoint
        command, what = _REGIONS[kind]

        async def region(request: Request) -> Response:
            return await _serve_region(gw, request, command, what)

        return region

    async def blob(request: Request) -> Response:
        access = gw.authorize(request, ["FindBlob"])
        if isinstance(access, Response):
            return access
        if gw.has_sources:
            uid = request.path_params["uniqueid"]
            return await _serve_stored(gw, request, access, "_Blob", uid, "blob")
        data = await _fetch(
            gw, "FindBlob", {"_uniqueid": ["==", request.path_params["uniqueid"]]}, "blob"
        )
        if isinstance(data, Response):
            return data
        return _answer(request, access, data, strong_etag(data))

    return [
        Route("/images/by/{prop}/{value:path}", image_by, methods=["GET"]),
        Route("/images/{uniqueid}", image, methods=["GET"]),
        Route("/boxes/{uniqueid}", region_handler("boxes"), methods=["GET"]),
        Route("/polygons/{uniqueid}", region_handler("polygons"), methods=["GET"]),
        Route("/blobs/{uniqueid}", blob, methods=["GET"]),
    ]
