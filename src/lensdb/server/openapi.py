"""The OpenAPI description of the HTTP side (served at /openapi.json)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from lensdb import __version__

_ERROR = {
    "type": "object",
    "required": ["status", "info"],
    "properties": {"status": {"type": "integer"}, "info": {"type": "string"}},
}

_API = {
    "post": {
        "summary": "Run a query in the ApertureDB JSON query language",
        "description": (
            "One transaction: the commands in `query` run in order, consuming the `blobs` parts in "
            "order. Authenticate and RefreshToken need no session; every other query needs "
            "`Authorization: Bearer <session_token>`. Query-level failures, including "
            '`{"status": -1, "info": "Not Authenticated!"}`, are answered with HTTP 200.'
        ),
        "operationId": "query",
        "security": [{"session": []}, {}],
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["query"],
                        "properties": {
                            "query": {
                                "type": "string",
                                "description": "JSON array of commands, e.g. "
                                '[{"FindEntity": {"with_class": "Person", "results": {"count": true}}}]',
                            },
                            "blobs": {
                                "type": "array",
                                "items": {"type": "string", "format": "binary"},
                                "description": "Input blobs, in the order commands consume them",
                            },
                        },
                    },
                    "encoding": {"query": {"contentType": "text/plain"}},
                }
            },
        },
        "responses": {
            "200": {
                "description": "The query's response (success or query-level failure)",
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["json", "blobs"],
                            "properties": {
                                "json": {
                                    "description": "One {Command: {status, ...}} per command, or an error object",
                                    "oneOf": [
                                        {"type": "array", "items": {"type": "object"}},
                                        _ERROR,
                                    ],
                                },
                                "blobs": {
                                    "type": "array",
                                    "items": {"type": "string", "format": "byte"},
                                    "description": "Output blobs, standard base64",
                                },
                            },
                        }
                    }
                },
            },
            "400": {"description": "The request has no `query` part or is not multipart/form-data"},
            "413": {"description": "The request body exceeds the server's message limit"},
        },
    }
}


def schema(extra_paths: Iterable[dict[str, Any]] = ()) -> dict[str, Any]:
    paths: dict[str, Any] = {"/api/": _API}
    for p in extra_paths:
        paths.update(p)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "lensdb",
            "version": __version__,
            "description": "lensdb's HTTP interface, compatible with ApertureDB's REST API (/api/ and /api).",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "session": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A session token (adbs_…) from Authenticate or RefreshToken",
                }
            }
        },
    }
