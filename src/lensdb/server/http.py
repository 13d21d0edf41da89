"""The HTTP side: ApertureDB's REST endpoint `POST /api/` plus extension routes.

Requests are multipart/form-data with a `query` field and `blobs` parts in order; the
answer is always HTTP 200 with `{"json": <response>, "blobs": [<base64>...]}` for
anything that reached the query layer, since the SDK retries any other status.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from lensdb.auth.commands import NOT_AUTHENTICATED
from lensdb.errors import failure
from lensdb.server import extensions, openapi
from lensdb.server.context import ServerContext
from lensdb.server.dispatch import is_login_text
from lensdb.server.httplimits import BodyLimit, BodyTooLarge, BodyTooSlow, body_limit, limit_body

log = logging.getLogger(__name__)

MAX_PARTS = 1_000_000
# What a request without a valid session may send: an Authenticate or RefreshToken query.
UNAUTHENTICATED_BODY_BYTES = 64 * 1024


def create_app(context: ServerContext) -> Starlette:
    """Build the ASGI app: /api, /api/, /openapi.json and every registered extension."""

    async def api(request: Request) -> Response:
        token = _bearer(request.headers.get("authorization"))
        # Authentication before the body: without a valid session only a login fits.
        principal = await asyncio.to_thread(context.auth.principal, token) if token else None
        if principal is None:
            limit_body(request.scope, UNAUTHENTICATED_BODY_BYTES)
            if _declared_length(request) > UNAUTHENTICATED_BODY_BYTES:
                # Too big for a login: the answer the SDK expects (it logs in and resends).
                body = json.dumps({"json": dict(NOT_AUTHENTICATED), "blobs": []})
                return Response(
                    body, media_type="application/json", headers={"Connection": "close"}
                )
        limit = body_limit(request.scope) or context.max_message_bytes
        too_big = _too_big(request, limit)
        if too_big is not None:
            return too_big
        parsed = await _read_query(request, limit)
        if isinstance(parsed, Response):
            return parsed
        query_text, blobs = parsed
        address = request.client.host if request.client else None
        pool = context.executor
        login_pool = context.handler.login_executor
        if login_pool is not None and not blobs and is_login_text(query_text):
            pool = login_pool
        loop = asyncio.get_running_loop()
        body = await loop.run_in_executor(
            pool, context.handler.http_body, query_text, blobs, token, address
        )
        return Response(body, media_type="application/json")

    routes: list[BaseRoute] = [
        Route("/api/", api, methods=["POST"]),
        Route("/api", api, methods=["POST"]),
    ]
    fronts: list[extensions.Front] = []
    extra_docs = []
    for factory in extensions.factories():
        for made in factory(context):
            if isinstance(made, extensions.Front):
                fronts.append(made)
            else:
                routes.append(made)
        if isinstance(getattr(factory, "openapi_paths", None), dict):
            extra_docs.append(factory.openapi_paths)  # type: ignore[attr-defined]
    doc = openapi.schema(extra_docs)

    async def openapi_json(request: Request) -> Response:
        return JSONResponse(doc)

    routes.append(Route("/openapi.json", openapi_json, methods=["GET"]))
    app = App(
        fronts,
        routes=routes,
        exception_handlers={HTTPException: _http_error},
        middleware=[
            Middleware(
                BodyLimit,
                max_bytes=context.max_message_bytes,
                frame_timeout=context.settings.frame_timeout,
            )
        ],
    )
    app.state.context = context
    return app


class App(Starlette):
    """The Starlette app with the extensions' `Front`s asked first (see extensions.Front)."""

    def __init__(self, fronts: Sequence[extensions.Front], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fronts = tuple(fronts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.fronts and scope["type"] == "http" and not scope.get("root_path"):
            path = scope["path"]
            for front in self.fronts:
                if path.startswith(front.prefix) and await front.answer(scope, send):
                    return
        await super().__call__(scope, receive, send)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (no such route, method not allowed) in the API's JSON shape."""
    assert isinstance(exc, HTTPException)
    return JSONResponse(
        failure(f"{exc.detail}: {request.method} {request.url.path}"),
        exc.status_code,
        headers=exc.headers,
    )


def _declared_length(request: Request) -> int:
    length = request.headers.get("content-length", "")
    return int(length) if length.isdigit() else 0


def _too_big(request: Request, limit: int) -> Response | None:
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit:
        return JSONResponse(
            failure(f"Request of {length} bytes exceeds the limit of {limit}"),
            413,
            headers={"Connection": "close"},
        )
    return None


async def _read_query(request: Request, limit: int) -> tuple[str, list[bytes]] | Response:
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("application/json"):
        # Convenience for scripts: the JSON command array as the whole body, no blobs.
        return (await request.body()).decode("utf-8", "replace"), []
    if not ctype.startswith("multipart/form-data"):
        return _bad_request(
            "send multipart/form-data with a 'query' part and optional 'blobs' parts"
        )
    try:
        form = await request.form(max_files=MAX_PARTS, max_fields=MAX_PARTS, max_part_size=limit)
    except (BodyTooLarge, BodyTooSlow):
        raise
    except Exception as e:  # malformed multipart bodies raise various parser errors
        return _bad_request(f"could not parse multipart body: {e}")
    try:
        query = form.get("query")
        if query is None:
            return _bad_request("the 'query' part is missing")
        if isinstance(query, UploadFile):
            query = (await query.read()).decode("utf-8", "replace")
        blobs = []
        for part in form.getlist("blobs"):
            blobs.append(
                await part.read() if isinstance(part, UploadFile) else part.encode("utf-8")
            )
    finally:
        await form.close()
    return query, blobs


def _bad_request(info: str) -> Response:
    return Response(json.dumps(failure(info)), status_code=400, media_type="application/json")


def _bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None
