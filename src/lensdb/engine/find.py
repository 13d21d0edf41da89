"""The shared part of every Find*: selection, traversal, paging, projection and aggregates."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lensdb.engine.constraints import parse_constraints
from lensdb.engine.context import MAX_LIMIT, Context, Params, RefSet, as_int
from lensdb.engine.ids import connection_uid, object_uid
from lensdb.engine.values import check_key_name, decode_value
from lensdb.errors import QueryError, Status, answer
from lensdb.store.base import (
    AllOf,
    BlobMissing,
    ConnectionRow,
    ObjectRow,
    Predicate,
    Selection,
    SortKey,
)

FIND_COMMON = frozenset(
    {
        "_ref",
        "constraints",
        "results",
        "uniqueids",
        "blobs",
        "limit",
        "offset",
        "sort",
        "batch",
        "unique",
        "is_connected_to",
        "group_by_source",
    }
)
RESULT_KEYS = frozenset(
    {
        "list",
        "all_properties",
        "count",
        "sum",
        "min",
        "max",
        "average",
        "limit",
        "sort",
        "group_by_source",
        "blob",
        "group",
    }
)
# Output switches of region finds and the system property each one adds.
FLAG_KEYS = {
    "uniqueids": "_uniqueid",
    "coordinates": "_coordinates",
    "labels": "_label",
    "areas": "_area",
    "vertices": "_vertices",
    "bounds": "_bounds",
    "distances": "_distance",
    "metrics": "_metrics",
    "engines": "_engines",
    "dimensions": "_dimensions",
    "counts": "_count",
}
AGGREGATES = ("sum", "min", "max", "average")


def _coordinates(props: dict[str, Any]) -> dict[str, Any] | None:
    if "_x" not in props:
        return None
    return {k: props[f"_{k}"] for k in ("x", "y", "width", "height")}


def system_value(key: str, row: ObjectRow | ConnectionRow) -> Any:
    """The value of a listed key, system names included; None when absent."""
    props = row.props
    if key == "_uniqueid":
        return (
            connection_uid(row.id)
            if isinstance(row, ConnectionRow)
            else object_uid(row.cls, row.id)
        )
    if key == "_coordinates":
        return _coordinates(props)
    if isinstance(row, ConnectionRow):
        if key == "_src":
            return object_uid(row.src_cls, row.src)
        if key == "_dst":
            return object_uid(row.dst_cls, row.dst)
        if key == "_class":
            return row.cls
    elif key == "_class":
        return row.cls
    return decode_value(props.get(key))


@dataclass(slots=True)
class Shape:
    """What a Find returns per object, parsed from `results` and the top-level switches."""

    keys: list[str] = field(default_factory=list)
    all_properties: bool = False
    blobs: bool = False
    count: bool = False
    aggregates: dict[str, list[str]] = field(default_factory=dict)
    group_by_source: bool = False
    sort: list[SortKey] = field(default_factory=list)
    sequence: tuple[str, list[Any]] | None = None
    limit: int | None = None
    offset: int = 0
    batch: dict | None = None

    @property
    def per_object(self) -> bool:
        return bool(self.keys) or self.all_properties


def parse_shape(p: Params, flags: Sequence[str] = ("uniqueids",)) -> Shape:
    results = p.dict("results") or {}
    unknown = results.keys() - RESULT_KEYS
    if unknown:
        raise QueryError(f"unknown key(s) in 'results': {', '.join(sorted(unknown))}")
    s = Shape()
    listed = results.get("list", [])
    if not isinstance(listed, list) or not all(isinstance(k, str) for k in listed):
        raise QueryError("'results.list' must be a list of property names")
    s.keys = list(listed)
    s.all_properties = _flag(results, "all_properties")
    body = p.body
    for flag in flags:
        if flag in body and p.bool(flag) and FLAG_KEYS[flag] not in s.keys:
            s.keys.append(FLAG_KEYS[flag])
    s.blobs = ("blobs" in body and p.bool("blobs")) or _flag(results, "blob")
    s.count = "count" in results and results["count"] is not False
    for agg in AGGREGATES if results else ():
        if agg in results:
            keys = results[agg]
            keys = [keys] if isinstance(keys, str) else keys
            if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
                raise QueryError(f"'results.{agg}' must be a property name or a list of them")
            s.aggregates[agg] = keys
    s.group_by_source = ("group_by_source" in body and p.bool("group_by_source")) or _flag(
        results, "group_by_source"
    )
    if s.group_by_source and (s.count or s.aggregates):
        raise QueryError("group_by_source cannot be combined with count, sum, min, max or average")
    sort = p.get("sort", results.get("sort"))
    if sort is not None:
        s.sort, s.sequence = _parse_sort(sort)
    if "limit" in body or "limit" in results:
        limits = [
            as_int(name, v, 0)
            for name, v in (("limit", body.get("limit")), ("results.limit", results.get("limit")))
            if v is not None
        ]
        s.limit = min(limits) if limits else None
    if "offset" in body:
        s.offset = p.int("offset", 0) or 0
    batch = body.get("batch")
    if batch is not None:
        if not isinstance(batch, dict):
            raise QueryError('\'batch\' must be an object like {"batch_size": 100, "batch_id": 0}')
        size = batch.get("batch_size")
        bid = batch.get("batch_id", 0)
        s.batch = {
            "batch_size": as_int("batch.batch_size", size, 1) if size is not None else None,
            "batch_id": as_int("batch.batch_id", bid, 0),
        }
    return s


def _flag(results: dict, key: str) -> bool:
    v = results.get(key, False)
    if v is not False and not isinstance(v, bool):
        raise QueryError(f"'results.{key}' must be true or false")
    return v


def _parse_sort(sort: object) -> tuple[list[SortKey], tuple[str, list[Any]] | None]:
    items = sort if isinstance(sort, list) else [sort]
    keys: list[SortKey] = []
    sequence = None
    for item in items:
        if isinstance(item, str):
            keys.append(SortKey(check_key_name(item, "sort")))
            continue
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise QueryError(
                '\'sort\' must be a property name, {"key": ..., "order": '
                '"ascending"|"descending"} or a list of those'
            )
        check_key_name(item["key"], "sort")
        if "sequence" in item:
            if not isinstance(item["sequence"], list):
                raise QueryError("'sort.sequence' must be a list of values")
            sequence = (item["key"], item["sequence"])
            continue
        order = item.get("order", "ascending")
        if order not in ("ascending", "descending"):
            raise QueryError('\'sort.order\' must be "ascending" or "descending"')
        keys.append(SortKey(item["key"], order == "descending"))
    return keys, sequence


@dataclass
class Traversal:
    """Objects reachable from earlier refs: the allowed ids and, per source, its neighbours."""

    ids: list[int]
    # (id, class) of the one ref's objects; None for all/any, whose results cannot be grouped.
    sources: list[tuple[int, str]] | None = None
    pairs: list[tuple[int, int]] = field(default_factory=list)


def traverse(ctx: Context, spec: object) -> Traversal:
    """`is_connected_to`: {ref, direction, connection_class, constraints} or {all|any: [...]}."""
    if not isinstance(spec, dict):
        raise QueryError("'is_connected_to' must be an object with a 'ref'")
    for combo in ("all", "any"):
        if combo in spec:
            parts = spec[combo]
            if not isinstance(parts, list) or not parts:
                raise QueryError(f"'is_connected_to.{combo}' must be a non-empty list")
            sets = [set(traverse(ctx, part).ids) for part in parts]
            ids = set.intersection(*sets) if combo == "all" else set.union(*sets)
            return Traversal(sorted(ids))
    unknown = sorted(set(spec) - {"ref", "direction", "connection_class", "class", "constraints"})
    if unknown:
        raise QueryError(f"unknown key(s) in 'is_connected_to': {', '.join(unknown)}")
    refset = ctx.ref(spec.get("ref"), param="is_connected_to.ref")
    direction = spec.get("direction", "any")
    if direction not in ("any", "in", "out"):
        raise QueryError('\'is_connected_to.direction\' must be "in", "out" or "any"')
    cls = spec.get("connection_class", spec.get("class"))
    if cls is not None and not isinstance(cls, str):
        raise QueryError("'is_connected_to.connection_class' must be a string")
    where = parse_constraints(
        spec.get("constraints"), what="is_connected_to.constraints", connections=True
    )
    pairs = ctx.txn.neighbors(refset.ids, direction, cls, where) if refset.ids else []
    seen: dict[int, None] = {}
    for _, n in pairs:
        seen.setdefault(n, None)
    return Traversal(list(seen), list(zip(refset.ids, refset.classes, strict=True)), pairs)


Row = ObjectRow | ConnectionRow
# Rows -> their blobs (stored bytes, rendered or cropped), in order.
BlobsOf = Callable[[list], list[bytes]]
BLOB_CHUNK = 64
Fetch = Callable[[Selection], list]
Count = Callable[[Selection], int]


def run_find(
    ctx: Context,
    p: Params,
    shape: Shape,
    *,
    classes: Sequence[str] | None,
    where: Predicate | None,
    traversal: Traversal | None,
    fetch: Fetch,
    count: Count,
    blob_of: BlobsOf | None,
    kind: str = "object",
    lean: bool = False,
) -> dict[str, Any]:
    """Select, page, bind `_ref`, and build the response of one Find command.

    `lean`: `fetch` honours `Selection.ids_only`; a Find that reports nothing per object (it only
    binds a `_ref` or counts) then reads ids and classes alone: 20,000 labelled boxes among 110,000
    bind in a third of the time (bench/browse.py, label filter).
    """
    ids = traversal.ids if traversal is not None else None
    bare = lean and not (shape.per_object or shape.blobs or shape.sequence or shape.aggregates)
    base = Selection(classes=classes, where=where, ids=ids, sort=shape.sort, ids_only=bare)
    total: int | None = None
    first_two = None
    if "unique" in p and p.bool("unique"):
        first_two = fetch(unique_probe(base))
        if len(first_two) > 1:
            raise QueryError(
                "expecting 1 but got more than 1 (unique: true)", status=Status.NOT_UNIQUE
            )

    needs_all = shape.sequence is not None or bool(shape.aggregates)
    if (
        first_two is not None
        and not shape.offset
        and (shape.limit is None or shape.limit >= 1)
        and shape.batch is None
        and not needs_all
    ):
        rows, matched_all = first_two, None  # at most one match: it is the whole answer
    elif needs_all:
        rows = fetch(base)
        if shape.sequence is not None:
            rows = _sequence_sort(rows, *shape.sequence)
        total = len(rows)
        matched_all = rows
        rows = _page(rows, shape)
    else:
        offset, limit = _window(shape, lambda: count(base))
        rows = fetch(
            _with(base, offset=offset, limit=limit) if offset or limit is not None else base
        )
        matched_all = None
    if shape.count or shape.batch is not None:
        total = total if total is not None else count(base)

    if "_ref" in p.body:
        ctx.bind(p.body, RefSet(kind, [r.id for r in rows], [r.cls for r in rows]))

    out: dict[str, Any] = answer()
    report = shape.per_object or shape.blobs
    if shape.batch is not None:
        out["batch"] = _batch_info(shape, total or 0)
        if shape.batch["batch_size"] is None:
            report = False
    grouped = shape.group_by_source and traversal is not None and traversal.sources is not None
    if report:
        if shape.blobs:
            out["blobs_start"] = len(ctx.blobs_out)
        entities = []
        # Blobs are read a chunk of rows at a time: one batched read (parallel GETs from object
        # storage), and memory bounded by the chunk, not by the whole answer.
        for start in range(0, len(rows), BLOB_CHUNK):
            chunk = rows[start : start + BLOB_CHUNK]
            if shape.blobs:
                if blob_of is None:
                    raise QueryError("these objects have no blobs")
                datas = blob_of(chunk)
            else:
                datas = [None] * len(chunk)
            entities += [_project(r, shape, ctx, d) for r, d in zip(chunk, datas, strict=True)]
        key = "connections" if kind == "connection" else "entities"
        if grouped:
            out[key] = _group(traversal, rows, entities)
        elif shape.per_object or shape.blobs:
            out[key] = entities
        out["returned"] = len(rows)
    else:
        out["returned"] = 0
    if shape.count:
        out["count"] = total
    if shape.aggregates:
        out.update(_aggregates(shape.aggregates, matched_all or []))
    return out


def unique_probe(base: Selection) -> Selection:
    """The first read of a `unique: true` Find: two rows tell one match from many."""
    return _with(base, limit=2)


def _with(sel: Selection, **kw: Any) -> Selection:
    return Selection(
        classes=sel.classes,
        where=sel.where,
        ids=sel.ids,
        sort=sel.sort,
        offset=kw.get("offset", sel.offset),
        limit=kw.get("limit", sel.limit),
        ids_only=sel.ids_only,
    )


def _window(shape: Shape, total: Callable[[], int]) -> tuple[int, int | None]:
    offset, limit = shape.offset, shape.limit
    if shape.batch is not None and shape.batch["batch_size"] is not None:
        size = shape.batch["batch_size"]
        start = offset + shape.batch["batch_id"] * size
        limit = size if limit is None else max(0, min(size, offset + limit - start))
        offset = min(start, MAX_LIMIT)  # batch_id * batch_size may overflow what a backend takes
    return offset, limit


def _page(rows: list, shape: Shape) -> list:
    offset, limit = _window(shape, lambda: len(rows))
    return rows[offset : None if limit is None else offset + limit]


def _batch_info(shape: Shape, total: int) -> dict[str, Any]:
    b = shape.batch or {}
    if b.get("batch_size") is None:
        return {"total_elements": total}
    size, bid = b["batch_size"], b["batch_id"]
    return {
        "batch_id": bid,
        "batch_size": size,
        "total_elements": total,
        "end": min((bid + 1) * size, total),
    }


def _sequence_sort(rows: list, key: str, sequence: list[Any]) -> list:
    rank = {repr(v): i for i, v in enumerate(sequence)}
    return sorted(rows, key=lambda r: rank.get(repr(decode_value(r.props.get(key))), len(rank)))


def _project(row: Row, shape: Shape, ctx: Context, data: bytes | None) -> dict[str, Any]:
    if shape.all_properties:
        # Only dates need decoding; checking the type inline keeps this loop cheap.
        ent = {
            k: (decode_value(v) if type(v) is dict else v)
            for k, v in row.props.items()
            if k[0] != "_"
        }
        ent["_uniqueid"] = system_value("_uniqueid", row)
        for k in shape.keys:
            if k.startswith("_"):
                ent[k] = system_value(k, row)
    else:
        # A user property is read straight from the document (only dates need decoding):
        # system_value's checks for system names cost 1.5 us per key and row (10 k-NN hits).
        props = row.props
        ent = {}
        for k in shape.keys:
            if k.startswith("_"):
                ent[k] = system_value(k, row)
            else:
                v = props.get(k)
                ent[k] = decode_value(v) if type(v) is dict else v
    if shape.blobs:
        assert data is not None
        ent["_blob_index"] = ctx.emit_blob(data)
    return ent


def _group(t: Traversal, rows: list, entities: list[dict]) -> dict[str, list[dict]]:
    by_id = {r.id: e for r, e in zip(rows, entities, strict=True)}
    groups: dict[str, list[dict]] = {}
    for src_id, src_cls in t.sources:
        groups.setdefault(object_uid(src_cls, src_id), [])
    src_uid = {sid: object_uid(cls, sid) for sid, cls in t.sources}
    for src, n in t.pairs:
        if n in by_id:
            groups[src_uid[src]].append(by_id[n])
    return groups


def _aggregates(aggs: dict[str, list[str]], rows: list) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for agg, keys in aggs.items():
        values = {}
        for k in keys:
            nums = [
                v
                for v in (r.props.get(k) for r in rows)
                if isinstance(v, int | float) and not isinstance(v, bool)
            ]
            if agg == "sum":
                values[k] = sum(nums)
            elif not nums:
                values[k] = None
            elif agg == "min":
                values[k] = min(nums)
            elif agg == "max":
                values[k] = max(nums)
            else:
                values[k] = sum(nums) / len(nums)
        out[agg] = values[keys[0]] if len(keys) == 1 else values
    return out


def combine(*preds: Predicate | None) -> Predicate | None:
    parts = tuple(p for p in preds if p is not None)
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else AllOf(parts)


def stored_blobs(ctx: Context, rows: list[ObjectRow]) -> list[bytes]:
    """The stored bytes of rows, in order; a clear retry error when a delete removed them."""
    try:
        return ctx.store.get_blobs([row.blob for row in rows])  # type: ignore[misc]
    except BlobMissing as e:
        # A row is in this query's snapshot, but a delete committed since removed its bytes.
        row = next((r for r in rows if r.blob == e.key), rows[0])
        raise QueryError(
            f"the blob of {object_uid(row.cls, row.id)} is gone: a query running "
            "at the same time deleted it (retry)"
        ) from None
