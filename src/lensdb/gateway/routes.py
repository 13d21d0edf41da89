"""The gateway's route factory, registered on `lensdb serve`'s HTTP app (entry point `lensdb.http_routes`)."""

from __future__ import annotations

from starlette.middleware.cors import CORSMiddleware
from starlette.routing import BaseRoute, Mount, Router

from lensdb.gateway import media, tasks, webhook
from lensdb.gateway.config import GatewayConfig
from lensdb.gateway.core import Gateway
from lensdb.server.context import ServerContext
from lensdb.server.extensions import route_factory


def _cors(gw: Gateway, routes: list[BaseRoute], methods: list[str]) -> CORSMiddleware:
    # Browsers load task images with crossOrigin="anonymous" and by XHR (Range, ETag revalidation).
    return CORSMiddleware(
        Router(routes),
        allow_origins=gw.config.allow_origins,
        allow_methods=methods,
        allow_headers=["Authorization", "Range", "If-None-Match", "If-Range", "Content-Type"],
        expose_headers=["ETag", "Content-Range", "Content-Length", "Accept-Ranges", "X-Lensdb-Warnings"],
        max_age=600,
    )


@route_factory
def gateway_routes(ctx: ServerContext) -> list[BaseRoute]:
    gw = Gateway(ctx, GatewayConfig.load(ctx.data_dir, ctx.settings))
    return [
        Mount("/media", app=_cors(gw, media.routes(gw), ["GET", "HEAD"])),
        # Task lists are fetched by scripts and the connector, not by pages: no CORS.
        *tasks.routes(gw),
        *webhook.routes(gw),
    ]


gateway_routes.openapi_paths = {  # type: ignore[attr-defined]
    "/media/images/{uniqueid}": {"get": {
        "summary": "An image by _uniqueid (optional width, height, crop=x,y,w,h, format=jpg|png)",
        "description": "Bearer session token or a signed link (exp, sig). Strong ETag, Range, CORS.",
        "responses": {"200": {"description": "image bytes"}, "206": {"description": "a byte range"},
                      "304": {"description": "not modified"}, "401": {"description": "no session"},
                      "403": {"description": "bad or expired signature"}, "404": {"description": "no such image"}}}},
    "/media/images/by/{prop}/{value}": {"get": {"summary": "An image by a unique property value (e.g. guid)",
                                                "responses": {"200": {"description": "image bytes"}}}},
    "/media/boxes/{uniqueid}": {"get": {"summary": "A bounding box cut out of its image",
                                        "responses": {"200": {"description": "image bytes"}}}},
    "/media/polygons/{uniqueid}": {"get": {"summary": "A polygon's bounding rectangle cut out of its image",
                                           "responses": {"200": {"description": "image bytes"}}}},
    "/media/blobs/{uniqueid}": {"get": {"summary": "A blob's bytes",
                                        "responses": {"200": {"description": "blob bytes"}}}},
    "/labelstudio/tasks": {"get": {
        "summary": "Label Studio tasks for images chosen by constraints (json or csv), with signed image links",
        "responses": {"200": {"description": "a task file Label Studio imports as is"}}},
        "post": {"summary": "Same, parameters as a JSON object (also `uniqueids`)",
                 "responses": {"200": {"description": "task list"}}}},
    "/labelstudio/webhook": {"post": {
        "summary": "Label Studio annotation events (needs header X-Lensdb-Webhook-Secret)",
        "responses": {"200": {"description": "applied"}, "403": {"description": "wrong secret"}}}},
}
