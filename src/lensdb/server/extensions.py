"""A hook for later layers to add HTTP routes without editing the HTTP app.

Register a factory that takes the ServerContext and returns Starlette routes:

    from lensdb.server.extensions import route_factory

    @route_factory
    def media_routes(ctx: ServerContext) -> list[BaseRoute]:
        return [Route("/media/{id}", ...)]

Factories registered in-process before the app is built are used, and so are those
named by the entry-point group `lensdb.http_routes` (value: a module, which registers on
import, or a factory callable), so a package can plug in without being imported by hand.
A factory may also carry `openapi_paths` (a dict) to document its routes, and may return
`Front`s beside its routes: hot paths answered ahead of the app's middleware and routing.
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

from starlette.routing import BaseRoute

if TYPE_CHECKING:
    from lensdb.server.context import ServerContext

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "lensdb.http_routes"

Scope = MutableMapping[str, Any]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class Front:
    """A hot path answered ahead of the HTTP app's middleware and routing.

    For an HTTP request whose path starts with `prefix`, `answer(scope, send)` either sends a
    whole response and returns True, or sends nothing and returns False: then the request goes
    the ordinary way (middleware, routes), which also writes every error. A front never reads
    the request body, so it must decline requests that carry one (the body limits apply to
    those), and it keeps the rules of the routes it stands in front of (access, CORS).

    Why: the media gateway's image requests spent about half their time in Starlette's
    middleware and routing (bench/connector.py, py-spy), for an answer that needs none of it;
    answered by a front they take half the server's CPU time (lensdb.gateway.front).
    """

    prefix: str
    answer: Callable[[Scope, Send], Awaitable[bool]]


RouteFactory = Callable[["ServerContext"], Sequence[BaseRoute | Front]]

_factories: list[RouteFactory] = []


def route_factory(factory: RouteFactory) -> RouteFactory:
    """Register a route factory (usable as a decorator); registering twice is a no-op.
    It returns Starlette routes, and `Front`s if it has hot paths."""
    if factory not in _factories:
        _factories.append(factory)
    return factory


def unregister(factory: RouteFactory) -> None:
    if factory in _factories:
        _factories.remove(factory)


def factories() -> list[RouteFactory]:
    """Registered factories, after loading those declared as entry points."""
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = ep.load()
        except Exception:
            log.exception("could not load HTTP route extension %s", ep.value)
            continue
        if not isinstance(loaded, ModuleType) and callable(loaded):
            route_factory(loaded)
    return list(_factories)
