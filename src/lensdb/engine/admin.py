"""Database commands: GetStatus, GetSchema, CreateIndex, RemoveIndex, GetIndexes, UserLogMessage."""

from __future__ import annotations

import logging
from typing import Any

from lensdb import __version__
from lensdb.engine.context import Context, Params
from lensdb.engine.values import check_key_name
from lensdb.errors import QueryError, Status, answer

log = logging.getLogger("lensdb.query")


def get_status(ctx: Context, body: object) -> dict[str, Any]:
    Params(body, frozenset())
    return answer(info="OK", system="lensdb", version=__version__)


def get_schema(ctx: Context, body: object) -> dict[str, Any]:
    p = Params(body, frozenset({"ref", "type", "refresh"}))
    kind = p.str("type", "both")
    if kind not in ("entities", "connections", "both"):
        raise QueryError('\'type\' must be "entities", "connections" or "both"')
    indexed = ctx.txn.indexes()
    out: dict[str, Any] = answer()
    if kind in ("entities", "both"):
        out["entities"] = _section(ctx, "entity", indexed)
    if kind in ("connections", "both"):
        out["connections"] = _section(ctx, "connection", indexed)
    return out


def _section(ctx: Context, kind: str, indexed: set[tuple[str, str, str]]) -> dict | None:
    stats = ctx.txn.schema(kind)
    if not stats:
        return None
    classes: dict[str, Any] = {}
    for cls, st in sorted(stats.items()):
        props = {
            k: [n, (kind, cls, k) in indexed, ty] for k, (n, ty) in sorted(st.properties.items())
        }
        entry: Any = {"matched": st.matched, "properties": props or None}
        if kind == "connection" and st.ends:
            ends = [
                {"src": s, "dst": d, "matched": n, "properties": props or None}
                for (s, d), n in sorted(st.ends.items())
            ]
            entry = ends[0] if len(ends) == 1 else ends  # clients normalise both shapes
        classes[cls] = entry
    return {"returned": len(classes), "classes": classes}


_INDEX_PARAMS = frozenset(
    {"index_type", "target", "class", "property_key", "property", "property_type", "kind"}
)


def _index_spec(body: object) -> tuple[str, str, str]:
    p = Params(body, _INDEX_PARAMS)
    kind = p.get("index_type", p.get("target", "entity"))
    if kind not in ("entity", "connection"):
        raise QueryError('\'index_type\' must be "entity" or "connection"')
    cls = p.str("class", required=True)
    key = p.get("property_key", p.get("property"))
    if not isinstance(key, str) or not key:
        raise QueryError("'property_key' is required and must be a string")
    check_key_name(key, "property_key")
    if p.get("kind", "ordered") != "ordered":
        raise QueryError('only "ordered" indexes are supported')
    return kind, cls, key  # type: ignore[return-value]


def create_index(ctx: Context, body: object) -> dict[str, Any]:
    if ctx.txn.create_index(*_index_spec(body)):
        return answer()
    return answer(Status.EXISTS, info="Index exists!")


def remove_index(ctx: Context, body: object) -> dict[str, Any]:
    ctx.txn.remove_index(*_index_spec(body))
    return answer()


def get_indexes(ctx: Context, body: object) -> dict[str, Any]:
    p = Params(body, frozenset({"target", "class", "property", "kind"}))
    want = {k: p.get(k) for k in ("target", "class", "property", "kind") if p.get(k) is not None}
    indexes = [
        {"target": t, "class": c, "property": k, "kind": "ordered", "params": {}}
        for t, c, k in sorted(ctx.txn.indexes())
    ]
    indexes = [i for i in indexes if all(i[k] == v for k, v in want.items())]
    return answer(indexes=indexes)


def user_log_message(ctx: Context, body: object) -> dict[str, Any]:
    p = Params(body, frozenset({"text", "type"}))
    level = {"INFO": logging.INFO, "WARNING": logging.WARNING, "ERROR": logging.ERROR}.get(
        p.str("type", "INFO") or "INFO"
    )
    if level is None:
        raise QueryError("'type' must be INFO, WARNING or ERROR")
    log.log(level, "user message: %s", p.str("text", ""))
    return answer()


def delete_expired(ctx: Context, body: object) -> dict[str, Any]:
    return answer(info="AutoDelete")
