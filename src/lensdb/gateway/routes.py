"""The gateway's route factory, registered on `lensdb serve`'s HTTP app (entry point `lensdb.http_routes`)."""

from __future__ import annotations

from starlette.middleware.cors import CORSMiddleware
from starlette.routing import BaseRoute, Mount, Router

from lensdb.gateway import media, openapi, tasks, webhook
from lensdb.gateway.browse import routes as browse
from lensdb.gateway.config import GatewayConfig
from lensdb.gateway.core import Gateway
from lensdb.gateway.front import media_front
from lensdb.server.context import ServerContext
from lensdb.server.extensions import Front, route_factory


def _cors(gw: Gateway, routes: list[BaseRoute], methods: list[str]) -> CORSMiddleware:
    # Browsers load task images with crossOrigin="anonymous" and by XHR (Range, ETag revalidation).
    return CORSMiddleware(
        Router(routes),
        allow_origins=gw.config.allow_origins,
        allow_methods=methods,
        allow_headers=["Authorization", "Range", "If-None-Match", "If-Range", "Content-Type"],
        expose_headers=[
            "ETag",
            "Content-Range",
            "Content-Length",
            "Accept-Ranges",
            "X-Lensdb-Warnings",
        ],
        max_age=600,
    )


@route_factory
def gateway_routes(ctx: ServerContext) -> list[BaseRoute | Front]:
    gw = Gateway(ctx, GatewayConfig.load(ctx.data_dir, ctx.settings))
    media_app = _cors(gw, media.routes(gw), ["GET", "HEAD"])
    # Stored images and blobs by _uniqueid, answered ahead of the app (front.py) when the
    # engine offers lookups; the /media routes below answer everything else the same way.
    fronts = [media_front(gw, media_app)] if gw.has_sources else []
    return [
        *fronts,
        Mount("/media", app=media_app),
        # Task lists are fetched by scripts and the connector, not by pages: no CORS.
        *tasks.routes(gw),
        *webhook.routes(gw),
        # Pages for people: same-origin, cookie sessions, no CORS.
        *browse.routes(gw),
    ]


gateway_routes.openapi_paths = openapi.PATHS  # type: ignore[attr-defined]
