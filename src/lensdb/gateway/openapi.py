"""OpenAPI description of the gateway's routes (merged into `lensdb serve`'s /openapi.json)."""

from __future__ import annotations

from typing import Any

from lensdb.gateway.config import MAX_TTL

_ERROR = {
    "application/json": {
        "schema": {
            "type": "object",
            "required": ["status", "info"],
            "properties": {"status": {"type": "integer"}, "info": {"type": "string"}},
        }
    }
}


def _error(description: str) -> dict:
    return {"description": description, "content": _ERROR}


def _path(name: str, description: str, pattern: str | None = None) -> dict:
    schema: dict[str, Any] = {"type": "string", "minLength": 1}
    if pattern:
        schema["pattern"] = pattern
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": schema,
    }


def _query(name: str, description: str, schema: dict) -> dict:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


_UNIQUEID = _path("uniqueid", "lensdb _uniqueid, e.g. 2.0.17", r"^\d+\.\d+\.\d+$")
_SIGNED = [
    _query("exp", "signed links: expiry, Unix seconds", {"type": "integer"}),
    _query("sig", "signed links: the signature", {"type": "string"}),
]
_PIXELS = {"type": "integer", "minimum": 1, "maximum": 20000}
_TRANSFORM = [
    _query("width", "resize to this width", _PIXELS),
    _query("height", "resize to this height", _PIXELS),
    _query("format", "re-encode", {"type": "string", "enum": ["jpg", "jpeg", "png"]}),
]
_SIZE = r"(?:20000|1\d{4}|[1-9]\d{0,3})"  # 1..20000
_CROP = _query(
    "crop",
    "x,y,width,height in pixels",
    {"type": "string", "pattern": rf"^\d+,\d+,{_SIZE},{_SIZE}$"},
)


def _media(summary: str, parameters: list[dict], found: str) -> dict:
    return {
        "get": {
            "summary": summary,
            "description": "Bearer session token, or a signed link (exp, sig). Strong ETag, Range, CORS.",
            "parameters": parameters + _SIGNED,
            "responses": {
                "200": {"description": found},
                "206": {"description": "the byte range asked for"},
                "304": {"description": "not modified (If-None-Match)"},
                "400": _error("a parameter is not valid, or the image cannot be transformed"),
                "401": _error("no session, or it expired"),
                "403": _error("a bad or expired signature, or a role without read access"),
                "404": _error("nothing with this id"),
                "409": _error("several objects have this property value"),
                "416": {"description": "the byte range is outside the content"},
            },
        }
    }


_CONSTRAINTS = {"type": "object", "additionalProperties": {"type": "array"}}
_SELECT = {
    "type": "object",
    "required": ["set"],
    "additionalProperties": False,
    "properties": {
        "set": {"type": "string", "minLength": 1},
        "mode": {"type": "string", "enum": ["diverse", "dedup", "similar", "disagree"]},
        "n": {"type": "integer", "minimum": 1},
        "k": {"type": "integer", "minimum": 1},
        "threshold": {"type": "number"},
        "label_property": {"type": "string"},
        "like": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
    },
}
_TASK_PARAMS = {
    "constraints": ("ApertureDB constraints on images, as JSON", {"type": "string"}),
    "select": (
        "images chosen by their embeddings in a descriptor set, as JSON {set, mode: "
        "diverse|dedup|similar|disagree, n, threshold, like}",
        {"type": "string"},
    ),
    "predictions": ("add the images' boxes and polygons as predictions", {"type": "boolean"}),
    "pred_constraints": (
        "constraints on the regions made predictions, as JSON",
        {"type": "string"},
    ),
    "properties": ("image properties copied into task data, comma-separated", {"type": "string"}),
    "label_config": ("the project's labeling config, to name the task fields", {"type": "string"}),
    "limit": ("at most this many tasks", {"type": "integer", "minimum": 0}),
    "offset": ("skip this many images", {"type": "integer", "minimum": 0}),
    "strict": ("refuse region labels the config lacks", {"type": "boolean"}),
    "readonly": ("mark predictions read-only", {"type": "boolean"}),
    "ttl": (
        "lifetime of the signed image links, seconds",
        {"type": "integer", "minimum": 1, "maximum": MAX_TTL},
    ),
    "image_width": ("ask the links for images resized to this width", _PIXELS),
    "image_format": (
        "ask the links for this image format",
        {"type": "string", "enum": ["jpg", "jpeg", "png"]},
    ),
    "format": ("the task file's format", {"type": "string", "enum": ["json", "csv"]}),
    "base_url": (
        "the gateway address Label Studio's browsers use",
        {"type": "string", "pattern": "^https?://"},
    ),
}
_TASK_RESPONSES = {
    "200": {"description": "a task file Label Studio imports as it is"},
    "400": _error("a parameter is not valid"),
    "401": _error("no session, or it expired"),
    "403": _error("a role without read access"),
    "422": _error("the labeling config and the images' regions do not fit together"),
}

PATHS: dict[str, Any] = {
    "/media/images/{uniqueid}": _media(
        "An image by _uniqueid, optionally resized, cropped or re-encoded",
        [_UNIQUEID, *_TRANSFORM, _CROP],
        "image bytes",
    ),
    "/media/images/by/{prop}/{value}": _media(
        "An image by a property whose values are unique (e.g. guid)",
        [
            _path("prop", "the property's name", r"^[A-Za-z][A-Za-z0-9_]{0,99}$"),
            _path("value", "its value (numbers match numbers too)", r"^[^/]+$"),
            *_TRANSFORM,
            _CROP,
        ],
        "image bytes",
    ),
    "/media/boxes/{uniqueid}": _media(
        "A bounding box cut out of its image", [_UNIQUEID, *_TRANSFORM], "image bytes"
    ),
    "/media/polygons/{uniqueid}": _media(
        "A polygon's bounding rectangle cut out of its image",
        [_UNIQUEID, *_TRANSFORM],
        "image bytes",
    ),
    "/media/blobs/{uniqueid}": _media("A blob's bytes", [_UNIQUEID], "blob bytes"),
    "/labelstudio/tasks": {
        "get": {
            "summary": "Label Studio tasks for images chosen by constraints, with signed image links",
            "parameters": [
                # JSON-valued parameters are described by their content, as OpenAPI allows.
                {
                    "name": k,
                    "in": "query",
                    "required": False,
                    "description": d,
                    "content": {"application/json": {"schema": _CONSTRAINTS}},
                }
                if k in ("constraints", "pred_constraints")
                else {
                    "name": k,
                    "in": "query",
                    "required": False,
                    "description": d,
                    "content": {"application/json": {"schema": _SELECT}},
                }
                if k == "select"
                else _query(k, d, s)
                for k, (d, s) in _TASK_PARAMS.items()
            ],
            "responses": _TASK_RESPONSES,
        },
        "post": {
            "summary": "The same, with the parameters as a JSON object (also `uniqueids`)",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            # null means "not given" for every field.
                            "properties": {
                                k: {"anyOf": [s, {"type": "null"}]}
                                for k, s in {
                                    **{k: s for k, (_, s) in _TASK_PARAMS.items()},
                                    "constraints": _CONSTRAINTS,
                                    "pred_constraints": _CONSTRAINTS,
                                    "select": _SELECT,
                                    "properties": {"type": "array", "items": {"type": "string"}},
                                    "uniqueids": {"type": "array", "items": {"type": "string"}},
                                }.items()
                            },
                        }
                    }
                },
            },
            "responses": _TASK_RESPONSES,
        },
    },
    "/labelstudio/webhook": {
        "post": {
            "summary": "Label Studio annotation events and task deletions, applied to lensdb at once",
            "parameters": [
                {
                    "name": "X-Lensdb-Webhook-Secret",
                    "in": "header",
                    "required": True,
                    "schema": {"type": "string"},
                }
            ],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["action", "project"],
                            "properties": {
                                "action": {"type": "string"},
                                "project": {
                                    "type": "object",
                                    "required": ["id"],
                                    "properties": {"id": {"type": "integer"}},
                                },
                            },
                        }
                    }
                },
            },
            "responses": {
                "200": {"description": "applied, or ignored (an action lensdb does not use)"},
                "400": _error("not a Label Studio webhook payload"),
                "403": _error("wrong or missing secret"),
                "500": _error("lensdb refused the change; the next pull retries it"),
            },
        }
    },
}
