"""GET/POST /labelstudio/tasks: a task file Label Studio imports as is.

Parameters (query string for GET, a JSON object for POST): `constraints` (JSON FindImage
constraints), `uniqueids` (POST: exactly these images), `select` (images chosen by their
embeddings: JSON {set, mode: diverse|dedup|similar|disagree, n, threshold, like}, among those
the constraints select; see lensdb.index.choose), `predictions` (true: regions as
predictions), `pred_constraints`, `properties` (comma-separated image properties copied into
task data), `label_config` (the project's XML, so names and labels match), `format` (json|csv),
`ttl` (seconds the signed image links stay valid), `limit`, `offset`, `strict` (refuse regions
whose label the config lacks instead of leaving them out), `image_width`/`image_format`
(links to resized/re-encoded images), `base_url` (the address browsers reach lensdb at, default
LENSDB_PUBLIC_URL or the address of this request).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from lensdb.gateway.config import MAX_TTL
from lensdb.gateway.core import Gateway, error
from lensdb.index.choose import Choice
from lensdb.labelstudio import tasklist
from lensdb.media import MediaError, encode_format

READS = ["FindImage", "FindBoundingBox", "FindPolygon", "FindEntity"]


class BadParameter(ValueError):
    pass


def _json_param(value: Any, name: str) -> Any:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise BadParameter(f"{name} is not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise BadParameter(f'{name} must be a JSON object, e.g. {{"dataset": ["==", "train"]}}')
    return value


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


def _bool(value: Any, name: str) -> bool:
    if value is None or isinstance(value, bool):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise BadParameter(f"{name} must be true or false")


def _int(value: Any, name: str, low: int, high: int | None = None) -> int | None:
    if value is None or value == "":
        return None
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise BadParameter(f"{name} must be a whole number") from None
    if n < low or (high is not None and n > high):
        raise BadParameter(
            f"{name} must be between {low} and {high}" if high else f"{name} must be >= {low}"
        )
    return n


def parse(params: dict[str, Any], default_ttl: int) -> tuple[tasklist.TaskOptions, dict]:
    props = params.get("properties") or []
    if isinstance(props, str):
        props = [p.strip() for p in props.split(",") if p.strip()]
    if not isinstance(props, list) or not all(isinstance(p, str) for p in props):
        raise BadParameter("properties must be property names: a list, or comma-separated")
    label_config = params.get("label_config") or None
    if label_config is not None and not isinstance(label_config, str):
        raise BadParameter("label_config must be the project's labeling config, as XML text")
    uids = params.get("uniqueids")
    if uids is not None and (
        not isinstance(uids, list) or not all(isinstance(u, str) for u in uids)
    ):
        raise BadParameter("uniqueids must be a list of _uniqueid strings")
    select = None
    if params.get("select") not in (None, ""):
        try:
            select = Choice.parse(params["select"])
        except ValueError as e:
            raise BadParameter(str(e)) from None
    opts = tasklist.TaskOptions(
        constraints=_json_param(params.get("constraints"), "constraints"),
        uniqueids=uids,
        select=select,
        predictions=_bool(params.get("predictions"), "predictions"),
        pred_constraints=_json_param(params.get("pred_constraints"), "pred_constraints"),
        properties=list(props),
        label_config=label_config,
        limit=_int(params.get("limit"), "limit", 0),
        offset=_int(params.get("offset"), "offset", 0) or 0,
        strict_labels=_bool(params.get("strict"), "strict"),
        readonly=_bool(params.get("readonly"), "readonly"),
    )
    ttl = _int(params.get("ttl"), "ttl", 1, MAX_TTL) or default_ttl
    link: dict[str, Any] = {"ttl": ttl, "params": {}}
    width = _int(params.get("image_width"), "image_width", 1, 20000)
    if width:
        link["params"]["width"] = width
    if params.get("image_format"):
        try:
            link["params"]["format"] = encode_format(params["image_format"])
        except MediaError as exc:
            raise BadParameter(str(exc)) from None
    fmt = str(params.get("format") or "json").lower()
    if fmt not in ("json", "csv"):
        raise BadParameter("format must be json or csv")
    link["format"] = fmt
    base = str(params.get("base_url") or "").rstrip("/")
    if base and not base.startswith(("http://", "https://")):
        raise BadParameter("base_url must start with http:// or https://")
    link["base"] = base or None
    return opts, link


def routes(gw: Gateway) -> list[BaseRoute]:
    """The task list route."""

    async def tasks(request: Request) -> Response:
        access = gw.authorize(request, READS, allow_signed=False)
        if isinstance(access, Response):
            return access
        if request.method == "POST":
            try:
                params = await request.json()
            except ValueError:
                return error(400, "send a JSON object with the parameters")
            if not isinstance(params, dict):
                return error(400, "send a JSON object with the parameters")
        else:
            params = dict(request.query_params)
        try:
            opts, link = parse(params, gw.config.default_ttl)
        except BadParameter as exc:
            return error(400, str(exc))
        base = link["base"] or gw.base_url(request)

        def url(uid: str) -> str:
            return base + gw.signer.sign(f"/media/images/{uid}", link["ttl"], link["params"])

        def query(commands: list[dict], blobs: list[bytes] | None) -> Any:
            return gw.ctx.db.query(commands, blobs or [])

        try:
            result = await gw.run(tasklist.build, query, url, opts)
        except tasklist.TaskListError as exc:
            return error(422, str(exc))
        headers = {}
        warnings = result.warnings()
        if link["format"] == "csv":
            if opts.predictions:
                warnings.append("CSV carries no predictions: ask for format=json to import them")
            body, media_type, name = tasklist.to_csv(result.tasks), "text/csv", "tasks.csv"
        else:
            body, media_type, name = (
                tasklist.to_json(result.tasks),
                "application/json",
                "tasks.json",
            )
        if warnings:
            headers["X-Lensdb-Warnings"] = " | ".join(warnings)
        headers["Content-Disposition"] = f'attachment; filename="{name}"'
        headers["Cache-Control"] = "no-store"
        return Response(body, media_type=media_type, headers=headers)

    return [Route("/labelstudio/tasks", tasks, methods=["GET", "POST"])]
