"""GET /browse: the grid, an image's page, thumbnails, and the login form.

Every query runs as the visitor: its commands are checked against the visitor's roles (the
server's `AuthService`, as on the TCP and REST paths) before the engine sees them. Answers carry
`Server-Timing: app;dur=<ms>`, the time from the request reaching the handler to the page being
built (what bench/browse.py reports).
"""

from __future__ import annotations

import re
import time
from dataclasses import replace
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from lensdb.auth.store import AuthError
from lensdb.gateway.browse import views
from lensdb.gateway.browse.queries import (
    ANNOTATED,
    BadFilter,
    GridFilter,
    GridImage,
    command_names,
    grid_query,
    image_query,
    label_probe_query,
    parse_constraints,
    parse_grid,
    parse_image,
    parse_label_probe,
    thumbnail_query,
)
from lensdb.gateway.browse.session import BrowseSessions, Visitor, clear_cookies, set_cookies
from lensdb.gateway.core import Gateway, QueryFailed, error
from lensdb.gateway.httpcache import Conditions, media_response, not_modified, strong_etag
from lensdb.media import content_type

DEFAULT_PAGE = 48
MAX_PAGE = 200
MAX_THUMB = 2000
# "annotated: no" and common labels read pages and keep the images that pass; a request stops
# after this many reads and offers to go on from where it stopped, so it stays bounded.
MAX_SCAN_ROUNDS = 20
# A label carried by more regions of one kind than this is common: the page reads images (this
# many per read) rather than reach every labelled region's image.
LABEL_PROBE = 1000
SCAN_BATCH = 500
_UID = re.compile(r"^\d{1,3}\.\d{1,3}\.\d{1,19}$")
FORM_KEYS = ("constraints", "dataset", "label", "annotated", "limit", "after")


class Denied(Exception):
    """The visitor's roles do not allow a command the page needs."""


def _uid(text: str, what: str) -> str:
    if not _UID.match(text):
        raise BadFilter(f"{what} must be a _uniqueid like 2.0.17")
    return text


def _filter(form: dict[str, str]) -> tuple[GridFilter, int, str | None]:
    annotated = form.get("annotated", "")
    if annotated not in ANNOTATED:
        raise BadFilter("annotated must be empty, yes or no")
    limit_text = form.get("limit") or str(DEFAULT_PAGE)
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_PAGE:
        raise BadFilter(f"limit must be a whole number from 1 to {MAX_PAGE}")
    after = _uid(form["after"], "after") if form.get("after") else None
    f = GridFilter(
        constraints=parse_constraints(form.get("constraints", "")),
        dataset=form.get("dataset", "").strip(),
        label=form.get("label", "").strip(),
        annotated=annotated,
    )
    return f, int(limit_text), after


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _html(
    body: str, status: int, visitor: Visitor | None, request: Request, started: float
) -> HTMLResponse:
    ms = (time.perf_counter() - started) * 1000
    response = HTMLResponse(
        body,
        status_code=status,
        headers={"Server-Timing": f"app;dur={ms:.1f}", "Cache-Control": "no-store"},
    )
    if visitor is not None and visitor.renewed is not None:
        set_cookies(response, visitor.renewed, _secure(request))
    return response


def _to_login(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse("/browse/login?" + urlencode({"next": target}), status_code=303)


def _safe_next(value: str) -> str:
    # Only pages of this site: never an absolute or scheme-relative URL.
    if value.startswith("/browse") and not value.startswith("//"):
        return value
    return "/browse"


def routes(gw: Gateway) -> list[BaseRoute]:
    sessions = BrowseSessions(gw.ctx.auth, gw.config.dev)
    ls_url = gw.ctx.settings.ls_url

    async def run_as(visitor: Visitor, commands: list[dict]) -> tuple[list, list[bytes]]:
        if visitor.principal is not None:
            denied = gw.ctx.auth.denied(visitor.principal, command_names(commands))
            if denied:
                raise Denied(denied)
        return await gw.query(commands)

    async def collect(
        visitor: Visitor, f: GridFilter, after: str | None, limit: int
    ) -> tuple[list[GridImage], str | None, str]:
        """The images of one page, the cursor of the next page (None: last page) and a note."""
        labelled = None
        if f.label:
            probe = label_probe_query(f.label, LABEL_PROBE)
            response, _ = await run_as(visitor, probe.commands)
            labelled = parse_label_probe(probe, response, LABEL_PROBE)
            if not labelled.complete:
                labelled = None  # a common label: read pages and keep the images showing it
        if f.annotated != "no" and (not f.label or labelled is not None):
            q = grid_query(f, after, limit + 1, labelled)  # one more: is there a next page?
            response, _ = await run_as(visitor, q.commands)
            page = parse_grid(q, response, limit + 1)
            shown = list(page.images[:limit])
            more = len(page.images) > limit
            return shown, (shown[-1].uniqueid if more and shown else None), ""
        # The engine selects by constraints, dataset, "annotated: yes" and a rare label; the
        # rest is kept here.
        engine = replace(
            f,
            label=f.label if labelled is not None else "",
            annotated="yes" if f.annotated == "yes" else "",
        )
        batch = max(limit, SCAN_BATCH) if f.label and labelled is None else limit
        shown: list[GridImage] = []
        cursor = after
        for _ in range(MAX_SCAN_ROUNDS):
            q = grid_query(engine, cursor, batch, labelled)
            response, _ = await run_as(visitor, q.commands)
            page = parse_grid(q, response, batch)
            for image in page.images:
                if f.shows(image):
                    shown.append(image)
                if len(shown) > limit:
                    return shown[:limit], shown[limit - 1].uniqueid, ""
            cursor = page.last_read
            if not page.more:
                return shown, None, ""
        note = (
            f"read {MAX_SCAN_ROUNDS * batch} images for this page; the next page goes on from there"
        )
        return shown, cursor, note

    async def grid(request: Request) -> Response:
        started = time.perf_counter()
        visitor = sessions.visitor(request)
        if visitor is None:
            return _to_login(request)
        form = {k: request.query_params.get(k, "") for k in FORM_KEYS}
        shown: list[GridImage] = []
        next_query: dict[str, str] | None = None
        problem, note, status = "", "", 200
        try:
            f, limit, after = _filter(form)
            shown, next_after, note = await collect(visitor, f, after, limit)
            if next_after:
                next_query = {**{k: v for k, v in form.items() if v}, "after": next_after}
        except BadFilter as exc:
            problem, status = str(exc), 400
        except QueryFailed as exc:
            problem, status = f"The query was refused: {exc}", 400
        except Denied as exc:
            problem, status = str(exc), 403
        body = views.grid_page(visitor.name, form, shown, next_query, problem, note)
        return _html(body, status, visitor, request, started)

    async def image(request: Request) -> Response:
        started = time.perf_counter()
        visitor = sessions.visitor(request)
        if visitor is None:
            return _to_login(request)
        back = _safe_next(request.query_params.get("back", "/browse"))
        try:
            uid = _uid(request.path_params["uniqueid"], "the image id")
            q = image_query(uid)
            response, _ = await run_as(visitor, q.commands)
        except BadFilter as exc:
            return _html(views.error_page(str(exc), visitor.name), 400, visitor, request, started)
        except QueryFailed as exc:
            message = f"The query was refused: {exc}"
            return _html(views.error_page(message, visitor.name), 400, visitor, request, started)
        except Denied as exc:
            return _html(views.error_page(str(exc), visitor.name), 403, visitor, request, started)
        page = parse_image(q, response)
        if page is None:
            message = f"No image has the _uniqueid {uid}."
            return _html(views.error_page(message, visitor.name), 404, visitor, request, started)
        body = views.image_page(visitor.name, page, ls_url, back)
        return _html(body, 200, visitor, request, started)

    async def thumb(request: Request) -> Response:
        visitor = sessions.visitor(request)
        if visitor is None:
            return error(401, "Log in at /browse/login first (or send a Bearer session token).")
        uid = request.path_params["uniqueid"]
        width_text = request.query_params.get("width", "")
        if not _UID.match(uid):
            return error(400, "the image id must be a _uniqueid like 2.0.17")
        if width_text and (not width_text.isdigit() or not 1 <= int(width_text) <= MAX_THUMB):
            return error(400, f"width must be a whole number of pixels from 1 to {MAX_THUMB}")
        try:
            _, blobs = await run_as(visitor, thumbnail_query(uid, int(width_text or 0) or None))
        except QueryFailed as exc:
            return error(400, f"could not read the image: {exc}")
        except Denied as exc:
            return error(403, str(exc))
        if not blobs:
            return error(404, f"no image has the _uniqueid {uid}")
        data = blobs[0]
        etag = strong_etag(data)
        cache = "private, no-cache"  # revalidated (cheap with the ETag): a revoked session stops
        if not_modified(Conditions.of(request), etag):
            return Response(status_code=304, headers={"ETag": etag, "Cache-Control": cache})
        answer = media_response(request, data, content_type(data[:16]), etag, cache)
        if visitor.renewed is not None:
            set_cookies(answer, visitor.renewed, _secure(request))
        return answer

    async def login_form(request: Request) -> Response:
        next_url = _safe_next(request.query_params.get("next", "/browse"))
        return HTMLResponse(views.login_page(next_url=next_url))

    async def login(request: Request) -> Response:
        form = await request.form()
        fields: dict[str, Any] = {k: str(form.get(k) or "") for k in ("username", "password")}
        token = str(form.get("token") or "")
        next_url = _safe_next(str(form.get("next") or "/browse"))
        try:
            issued = sessions.log_in(fields["username"], fields["password"], token)
        except AuthError as exc:
            page = views.login_page(str(exc), next_url, fields["username"])
            return HTMLResponse(page, status_code=401)
        response = RedirectResponse(next_url, status_code=303)
        set_cookies(response, issued, _secure(request))
        return response

    async def logout(request: Request) -> Response:
        response = RedirectResponse("/browse/login", status_code=303)
        clear_cookies(response)
        return response

    return [
        Route("/browse", grid, methods=["GET"]),
        Route("/browse/", grid, methods=["GET"]),
        Route("/browse/login", login_form, methods=["GET"]),
        Route("/browse/login", login, methods=["POST"]),
        Route("/browse/logout", logout, methods=["POST"]),
        Route("/browse/image/{uniqueid}", image, methods=["GET"]),
        Route("/browse/thumb/{uniqueid}", thumb, methods=["GET"]),
    ]
