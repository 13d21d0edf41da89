"""AddConnection, FindConnection, UpdateConnection, DeleteConnection."""

from __future__ import annotations

from typing import Any

from lensdb.engine.constraints import parse_constraints
from lensdb.engine.context import Context, Params, RefSet
from lensdb.engine.find import parse_shape, run_find
from lensdb.engine.values import check_user_key, encode_properties
from lensdb.errors import QueryError, Status, answer
from lensdb.store.base import Selection

FIND = frozenset(
    {
        "_ref",
        "with_class",
        "src",
        "dst",
        "constraints",
        "results",
        "uniqueids",
        "limit",
        "offset",
        "sort",
        "unique",
        "batch",
    }
)


def add(ctx: Context, body: object) -> dict[str, Any]:
    p = Params(body, frozenset({"_ref", "class", "src", "dst", "properties", "if_not_found"}))
    cls = p.str("class", required=True)
    assert cls is not None
    if not cls:
        raise QueryError("'class' must not be empty")
    src = ctx.ref(p.get("src"), param="src")
    dst = ctx.ref(p.get("dst"), param="dst")
    if not src.ids or not dst.ids:
        which = "src" if not src.ids else "dst"
        raise QueryError(f"'{which}' (reference {p.get(which)}) matched no object to connect")
    props = encode_properties(p.get("properties"))
    check = "if_not_found" in p
    where = (
        parse_constraints(p.get("if_not_found"), what="if_not_found", connections=True)
        if check
        else None
    )
    ids: list[int] = []
    created = 0
    for s in src.ids:
        for d in dst.ids:
            if check:
                found = ctx.txn.find_connections(
                    Selection(classes=[cls], where=where, limit=1), src=[s], dst=[d]
                )
                if found:
                    ids.append(found[0].id)
                    continue
            ids.append(ctx.txn.add_connection(cls, s, d, props))
            created += 1
    ctx.bind(p.body, RefSet("connection", ids, [cls] * len(ids)))
    if created == 0 and check:
        return answer(Status.EXISTS, info="Object Exists!")
    return answer()


def _ends(ctx: Context, p: Params) -> tuple[list[int] | None, list[int] | None]:
    src = ctx.ref(p.get("src"), param="src").ids if "src" in p else None
    dst = ctx.ref(p.get("dst"), param="dst").ids if "dst" in p else None
    return src, dst


def find(ctx: Context, body: object) -> dict[str, Any]:
    p = Params(body, FIND)
    shape = parse_shape(p)
    cls = p.str("with_class")
    src, dst = _ends(ctx, p)

    def fetch(sel: Selection) -> list:
        return ctx.txn.find_connections(sel, src=src, dst=dst)

    def count(sel: Selection) -> int:
        return ctx.txn.count_connections(sel, src=src, dst=dst)

    return run_find(
        ctx,
        p,
        shape,
        classes=[cls] if cls else None,
        where=parse_constraints(p.get("constraints"), connections=True),
        traversal=None,
        fetch=fetch,
        count=count,
        blob_of=None,
        kind="connection",
    )


def _targets(ctx: Context, p: Params) -> list[int]:
    cls = p.str("with_class")
    where = parse_constraints(p.get("constraints"), connections=True)
    ids = ctx.ref(p.get("ref"), kind="connection").ids if "ref" in p else None
    src, dst = _ends(ctx, p)
    if ids is not None and where is None and cls is None and src is None and dst is None:
        return ids
    sel = Selection(classes=[cls] if cls else None, where=where, ids=ids)
    return [c.id for c in ctx.txn.find_connections(sel, src=src, dst=dst)]


def update(ctx: Context, body: object) -> dict[str, Any]:
    p = Params(
        body,
        frozenset({"ref", "with_class", "constraints", "src", "dst", "properties", "remove_props"}),
    )
    props = encode_properties(p.get("properties"))
    remove = p.get("remove_props", [])
    if not isinstance(remove, list):
        raise QueryError("'remove_props' must be a list of property names")
    ids = _targets(ctx, p)
    ctx.txn.update_connections(ids, props, [check_user_key(k) for k in remove])
    return answer(count=len(ids))


def delete(ctx: Context, body: object) -> dict[str, Any]:
    p = Params(body, frozenset({"ref", "with_class", "constraints", "src", "dst"}))
    ids = _targets(ctx, p)
    ctx.txn.delete_connections(ids)
    return answer(count=len(ids))
