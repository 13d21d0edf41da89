"""Descriptor sets and descriptors: Add/Find/Update/Delete, k-NN search and ClassifyDescriptor.

A set is an object of class `_DescriptorSet` (`_name`, `_dimensions`, `_metrics`, `_engines`
and `_version`, its change counter); a descriptor is an object of class `_Descriptor` whose blob
is its vector (little-endian float32, exactly as the client sent it), with `_label` and
`_set_name`, linked from its set by a `_DescriptorSetToDescriptor` connection. So vectors obey
the same transaction and crash rules as every blob, on every backend.

The in-memory index (lensdb.index) is derived from those rows. Every query that adds or
removes a set's vectors bumps the set's `_version` in its own transaction; after the commit
the process applies its changes to the loaded index. A search whose snapshot shows a newer
version than the index holds (another process wrote, or the index was never loaded) catches
the index up first: on a backend shared by several servers (PostgreSQL), from the change log
the same transactions wrote (store.base.ChangeLog), so a descriptor added or deleted through
one server is found or gone through another at its next query, reading only what changed; on
SQLite from the rows with higher ids. Candidates from the index are always re-read from the
query's snapshot, so a deleted or rolled-back vector never shows (their distances are the
index's: see lensdb.index). A server also brings its loaded indexes up to the rows every half
second without a search (sync_loaded), and unloads those of sets deleted elsewhere.

A k-NN search in a read-only query takes its set (id, dimensions, metrics, engines: none of them
ever changes) from the catalog of sets this process searched before, and reads the set's row in
the same statement as the hits, instead of looking it up first; when the row is gone or newer
than the index, it looks the set up and searches again. Every removal of a descriptor, by any
command (DeleteEntity naming no class included), bumps its set's `_version` and goes into the
change log, so no other server's index keeps it.

Where the time of a k-NN query goes (200,000 x 512 clustered vectors, k=10, one thread, CPU
time per query, a 2-core machine shared with other jobs; the same process alternating lensdb
and hnswlib): hnswlib's search takes 270-290 us. Before this design lensdb added 230-330 us
(0.47-0.55x hnswlib alone); sampled with py-spy at 20,000 vectors, 11 % of a query went to
recomputing the hits' distances, 15 % to reading the hit rows (a third of that json.loads) and
6 % to looking the set up. Now it adds 120-140 us (0.67-0.69x): about 50 us reading the 10 hit
rows (SQLite's pages are cold after hnswlib's search has gone through megabytes of graph;
17 us warm), the rest Python (parsing, the transaction, shaping the answer), each step 2-3
times slower than warm for the same reason.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lensdb.engine.constraints import parse_constraints
from lensdb.engine.context import BlobInput, Context, Params, RefSet
from lensdb.engine.find import (
    FIND_COMMON,
    Row,
    combine,
    parse_shape,
    run_find,
    stored_blobs,
    traverse,
)
from lensdb.engine.values import check_user_key, encode_properties
from lensdb.errors import QueryError, Status, answer, failure
from lensdb.index import APPROXIMATE_ENGINES, ENGINES, METRICS, VectorIndexes, VectorSet
from lensdb.store.base import (
    ChangeLog,
    Compare,
    ObjectRow,
    OneOf,
    Predicate,
    Selection,
    SortKey,
)

SET_CLASS = "_DescriptorSet"
DESCRIPTOR_CLASS = "_Descriptor"
SET_LINK = "_DescriptorSetToDescriptor"
# The class of a `connect` from AddDescriptor that names none (the SDK's CLIP and FaceNet
# loaders send none); it shows in GetSchema like any other.
DEFAULT_LINK = "_DescriptorConnection"
NO_LABEL = "None"  # what an unlabelled descriptor's _label holds, as in ApertureDB and VDMS
DEFAULT_METRIC = "L2"
DEFAULT_ENGINE = "HNSW"
MAX_DIMENSIONS = 65_536
# Indexes the SDK's Utils treat as built in (never removed by remove_all_indexes).
BUILTIN_INDEXES = (("entity", SET_CLASS, "_name"), ("entity", DESCRIPTOR_CLASS, "_set_name"))
# knn_first false: filter first (exact over the matches) when at most this share of the set
# matches the constraints; otherwise search the index and filter, over-fetching.
SELECTIVE_SHARE = 0.05

ADD_COMMON = frozenset({"_ref", "properties", "if_not_found", "connect"})
UPDATE_COMMON = frozenset({"ref", "constraints", "properties", "remove_props"})
DELETE_COMMON = frozenset({"ref", "constraints"})
SET_FLAGS = ("uniqueids", "metrics", "engines", "dimensions", "counts")
DESCRIPTOR_FLAGS = ("uniqueids", "labels", "distances")
KNN = frozenset({"set", "k_neighbors", "knn_first", "knnfirst", "metric", "engine"})
FIND_SET = FIND_COMMON | {"with_name", *SET_FLAGS}
FIND_DESCRIPTOR = FIND_COMMON | KNN | {"distances", "labels", "with_label", "indexed_results_only"}


@dataclass(frozen=True)
class DescriptorSet:
    id: int
    name: str
    dimensions: int
    metrics: tuple[str, ...]
    engines: tuple[str, ...]
    version: int

    @classmethod
    def of(cls, row: ObjectRow) -> DescriptorSet:
        p = row.props
        return cls(
            row.id,
            p["_name"],
            int(p["_dimensions"]),
            tuple(p["_metrics"]),
            tuple(p["_engines"]),
            int(p.get("_version", 0)),
        )


@dataclass
class _Changes:
    """What one query did to a set's vectors, applied to the index after its commit."""

    base: int  # the set's _version before this query
    seq: int = 0  # the last change-log entry it wrote (a store with a ChangeLog)
    ids: list[int] = field(default_factory=list)
    vectors: list[np.ndarray] = field(default_factory=list)
    removed: set[int] = field(default_factory=set)


@dataclass
class _State:
    """The descriptor part of one query's context."""

    sets: dict[str, DescriptorSet] = field(default_factory=dict)
    changes: dict[int, _Changes] = field(default_factory=dict)
    dropped: set[int] = field(default_factory=set)
    # Indexes loaded or caught up inside this (write) transaction: they may hold its
    # uncommitted vectors, so a rollback unloads them.
    read_in_write: set[int] = field(default_factory=set)


def _state(ctx: Context) -> _State:
    st = ctx.extra.get("descriptors")
    if st is None:
        st = ctx.extra["descriptors"] = _State()
    return st


def _indexes(ctx: Context) -> VectorIndexes:
    vi = ctx.extra.get("vectors")
    if vi is None:  # a Context made without a Database (tests of single functions)
        vi = ctx.extra["vectors"] = VectorIndexes()
    return vi


# --- vectors in blobs ----------------------------------------------------------------------------


def prepare_input(data: bytes, *, keep: bool) -> BlobInput:
    """Decode a vector blob before the transaction. `keep`: the bytes are stored (AddDescriptor);
    otherwise it is a query vector and only the decoded array is kept."""
    if len(data) % 4:
        return BlobInput(
            None,
            error=f"a descriptor blob is float32 values, 4 bytes each; this "
            f"one has {len(data)} bytes",
        )
    raw = bytes(data)  # (the same object when it is bytes already); kept when stored
    vec = np.frombuffer(raw, dtype="<f4")  # read-only, over bytes nobody changes
    # A NaN or an infinity makes the sum of squares NaN or infinite: only then (or when it
    # overflowed) is every value looked at. 0.3 against 1.1 us for 512 values (timeit).
    if not math.isfinite(vec.dot(vec)) and not np.isfinite(vec).all():
        return BlobInput(None, error="the descriptor holds NaN or infinite values")
    return BlobInput(raw if keep else None, info=vec)


def _vector(blob: BlobInput, s: DescriptorSet) -> np.ndarray:
    if blob.error is not None:
        raise QueryError(blob.error)
    vec: np.ndarray = blob.info
    if len(vec) != s.dimensions:
        raise QueryError(
            f"Blob Dimensions Mismatch: set {s.name!r} has {s.dimensions} "
            f"dimensions ({s.dimensions * 4} bytes of float32); the blob has "
            f"{len(vec) * 4} bytes"
        )
    return vec


def _decode_stored(data: bytes, dims: int) -> np.ndarray:
    vec = np.frombuffer(data, dtype="<f4")
    if len(vec) != dims:
        raise QueryError(f"a stored descriptor has {len(vec)} values, its set {dims}")
    return vec


# --- sets ----------------------------------------------------------------------------------------


def _names(value: object, allowed: frozenset[str] | tuple[str, ...], what: str) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(v, str) for v in items):
        raise QueryError(
            f"'{what}' must be a name or a non-empty list of names, "
            f"among {', '.join(sorted(allowed))}"
        )
    bad = [v for v in items if v not in allowed]
    if bad:
        raise QueryError(
            f"unknown {what} {', '.join(map(repr, bad))}; known: {', '.join(sorted(allowed))}"
        )
    return list(dict.fromkeys(items))


def _find_set(ctx: Context, name: str) -> DescriptorSet | None:
    st = _state(ctx)
    if name in st.sets:
        return st.sets[name]
    rows = ctx.txn.find_objects(
        Selection(classes=[SET_CLASS], where=Compare("_name", "==", name), limit=1)
    )
    if not rows:
        return None
    s = st.sets[name] = DescriptorSet.of(rows[0])
    return s


def _set(ctx: Context, name: str) -> DescriptorSet:
    s = _find_set(ctx, name)
    if s is None:
        raise QueryError(
            f"DescriptorSet Not Found! (no descriptor set named {name!r}; "
            "add it first with AddDescriptorSet)"
        )
    return s


def add_set(ctx: Context, body: object) -> dict[str, Any]:
    p = Params(body, ADD_COMMON | {"name", "dimensions", "metric", "engine"})
    name = p.str("name", required=True)
    assert name is not None
    if not name:
        raise QueryError("'name' must not be empty")
    if "dimensions" not in p:
        raise QueryError("'dimensions' is required")
    dims = p.int("dimensions", minimum=1)
    assert dims is not None
    if dims > MAX_DIMENSIONS:
        raise QueryError(f"'dimensions' must be at most {MAX_DIMENSIONS}")
    metrics = _names(p.get("metric", DEFAULT_METRIC), METRICS, "metric")
    engines = _names(p.get("engine", DEFAULT_ENGINE), ENGINES, "engine")
    props = encode_properties(p.get("properties"))
    existing = _find_set(ctx, name)
    if existing is None and "if_not_found" in p:
        where = parse_constraints(p.get("if_not_found"), what="if_not_found")
        rows = ctx.txn.find_objects(Selection(classes=[SET_CLASS], where=where, limit=1))
        existing = DescriptorSet.of(rows[0]) if rows else None
    if existing is not None:
        ctx.bind(p.body, RefSet("object", [existing.id], [SET_CLASS]))
        return failure("Object Exists!", Status.EXISTS)
    for kind, cls, key in BUILTIN_INDEXES:
        if (kind, cls, key) not in ctx.txn.indexes():
            ctx.txn.create_index(kind, cls, key)
    props.update(
        {
            "_name": name,
            "_dimensions": dims,
            "_metrics": metrics,
            "_engines": engines,
            "_version": 0,
        }
    )
    oid = ctx.txn.add_object(SET_CLASS, props)
    _state(ctx).sets[name] = DescriptorSet(oid, name, dims, tuple(metrics), tuple(engines), 0)
    if "connect" in p:
        _connect(ctx, oid, p.get("connect"))
    ctx.bind(p.body, RefSet("object", [oid], [SET_CLASS]))
    return answer()


def find_set(ctx: Context, body: object) -> dict[str, Any]:
    p = Params(body, FIND_SET)
    shape = parse_shape(p, SET_FLAGS)
    if shape.all_properties and "_name" not in shape.keys:
        shape.keys.append("_name")  # clients key sets by _name after all_properties
    name = p.str("with_name")
    where = combine(
        parse_constraints(p.get("constraints")),
        Compare("_name", "==", name) if name is not None else None,
    )
    traversal = traverse(ctx, p.get("is_connected_to")) if "is_connected_to" in p else None
    counts = "_count" in shape.keys

    def fetch(sel: Selection) -> list:
        rows = ctx.txn.find_objects(sel)
        if counts:
            for r in rows:
                r.props["_count"] = _count_in(ctx, r.props["_name"])
        return rows

    return run_find(
        ctx,
        p,
        shape,
        classes=[SET_CLASS],
        where=where,
        traversal=traversal,
        fetch=fetch,
        count=ctx.txn.count_objects,
        blob_of=None,
    )


def _count_in(ctx: Context, name: str) -> int:
    return ctx.txn.count_objects(
        Selection(classes=[DESCRIPTOR_CLASS], where=Compare("_set_name", "==", name))
    )


def _targets(ctx: Context, p: Params, cls: str, scope: Predicate | None) -> list[int]:
    where = combine(parse_constraints(p.get("constraints")), scope)
    if "ref" in p:
        ref = ctx.ref(p.get("ref"))
        ids = [i for i, c in zip(ref.ids, ref.classes, strict=True) if c == cls]
        if where is None:
            return ids
        return [r.id for r in ctx.txn.find_objects(Selection(classes=[cls], where=where, ids=ids))]
    return [r.id for r in ctx.txn.find_objects(Selection(classes=[cls], where=where))]


def _updates(p: Params) -> tuple[dict[str, Any], list[str]]:
    props = encode_properties(p.get("properties"))
    remove = p.get("remove_props", [])
    if not isinstance(remove, list):
        raise QueryError("'remove_props' must be a list of property names")
    return props, [check_user_key(k) for k in remove]


def update_set(ctx: Context, body: object) -> dict[str, Any]:
    p = Params(body, UPDATE_COMMON | {"with_name"})
    props, remove = _updates(p)
    name = p.str("with_name")
    ids = _targets(ctx, p, SET_CLASS, Compare("_name", "==", name) if name is not None else None)
    ctx.txn.update_objects(ids, props, remove)
    return answer(count=len(ids))


def delete_set(ctx: Context, body: object) -> dict[str, Any]:
    p = Params(body, DELETE_COMMON | {"with_name"})
    name = p.str("with_name")
    ids = _targets(ctx, p, SET_CLASS, Compare("_name", "==", name) if name is not None else None)
    delete_sets(ctx, ids)
    return answer(count=len(ids))


def delete_sets(ctx: Context, ids: list[int]) -> None:
    """Delete sets with their descriptors (and, through the store, every connection of both)."""
    if not ids:
        return
    rows = ctx.txn.find_objects(Selection(classes=[SET_CLASS], ids=ids))
    names = tuple(r.props["_name"] for r in rows)
    doomed = [
        r.id
        for r in ctx.txn.find_objects(
            Selection(classes=[DESCRIPTOR_CLASS], where=OneOf("_set_name", names))
        )
    ]
    ctx.txn.delete_objects(list(ids) + doomed)
    st = _state(ctx)
    st.dropped.update(ids)
    for n in names:
        st.sets.pop(n, None)


# --- descriptors: add, update, delete ------------------------------------------------------------


def add(ctx: Context, body: object) -> dict[str, Any]:
    p = Params(body, ADD_COMMON | {"set", "label"})
    blob = ctx.next_blob()
    name = p.str("set", required=True)
    assert name is not None
    s = _set(ctx, name)
    vec = _vector(blob, s)
    label = p.get("label", NO_LABEL)
    if not isinstance(label, str):
        raise QueryError("'label' must be a string")
    props = encode_properties(p.get("properties"))
    if "if_not_found" in p:
        existing = _existing(ctx, s, p.get("if_not_found"))
        if existing:
            ctx.bind(p.body, RefSet("object", existing, [DESCRIPTOR_CLASS] * len(existing)))
            return failure("Object Exists!", Status.EXISTS)
    props["_label"] = label
    props["_set_name"] = s.name
    oid = ctx.txn.add_object(DESCRIPTOR_CLASS, props, ctx.keep_blob(blob))
    ctx.txn.add_connection(SET_LINK, s.id, oid, {})
    if "connect" in p:
        _connect(ctx, oid, p.get("connect"))
    ch = _changes(ctx, s)
    ch.ids.append(oid)
    ch.vectors.append(vec)
    ctx.bind(p.body, RefSet("object", [oid], [DESCRIPTOR_CLASS]))
    return answer()


def _existing(ctx: Context, s: DescriptorSet, spec: object) -> list[int]:
    if isinstance(spec, int) and not isinstance(spec, bool):
        return list(ctx.ref(spec, param="if_not_found").ids)
    where = combine(
        Compare("_set_name", "==", s.name), parse_constraints(spec, what="if_not_found")
    )
    return [
        r.id
        for r in ctx.txn.find_objects(Selection(classes=[DESCRIPTOR_CLASS], where=where, limit=1))
    ]


def _connect(ctx: Context, oid: int, spec: object) -> None:
    from lensdb.engine.objects import _connect as connect  # objects imports this module

    if isinstance(spec, dict) and "class" not in spec:
        spec = {**spec, "class": DEFAULT_LINK}
    connect(ctx, oid, spec)


def _changes(ctx: Context, s: DescriptorSet) -> _Changes:
    st = _state(ctx)
    ch = st.changes.get(s.id)
    if ch is None:
        ch = st.changes[s.id] = _Changes(s.version)
    return ch


def update(ctx: Context, body: object) -> dict[str, Any]:
    p = Params(body, UPDATE_COMMON | {"set", "label"})
    props, remove = _updates(p)
    if "label" in p:
        label = p.get("label")
        if not isinstance(label, str):
            raise QueryError("'label' must be a string")
        props["_label"] = label
    ids = _targets(ctx, p, DESCRIPTOR_CLASS, _scope(p))
    ctx.txn.update_objects(ids, props, remove)
    return answer(count=len(ids))


def _scope(p: Params) -> Predicate | None:
    name = p.str("set")
    return Compare("_set_name", "==", name) if name is not None else None


def delete(ctx: Context, body: object) -> dict[str, Any]:
    p = Params(body, DELETE_COMMON | {"set"})
    ids = _targets(ctx, p, DESCRIPTOR_CLASS, _scope(p))
    delete_descriptors(ctx, ids)
    return answer(count=len(ids))


def delete_descriptors(ctx: Context, ids: list[int]) -> None:
    """Delete descriptors (their connections go with them) and note it for their sets' index."""
    if not ids:
        return
    rows = ctx.txn.find_objects(Selection(classes=[DESCRIPTOR_CLASS], ids=ids))
    for r in rows:
        s = _find_set(ctx, r.props["_set_name"])
        if s is not None:
            _changes(ctx, s).removed.add(r.id)
    ctx.txn.delete_objects(ids)


def delete_own(ctx: Context, ids: list[int], classes: list[str] | None) -> list[int]:
    """Delete the descriptor sets and descriptors among the objects a DeleteEntity removes as
    DeleteDescriptorSet and DeleteDescriptor would: a set takes its descriptors with it, and
    every descriptor removed is noted for its set's index (and the change log, so other servers'
    indexes drop it too). Returns the other ids, for the caller to delete."""
    if not ids or (
        classes is not None and SET_CLASS not in classes and DESCRIPTOR_CLASS not in classes
    ):
        return ids
    if classes == [DESCRIPTOR_CLASS]:  # (the SDK's remove_all_descriptors sends it)
        delete_descriptors(ctx, ids)
        return []
    if classes == [SET_CLASS]:  # (and remove_all_descriptorsets this)
        delete_sets(ctx, ids)
        return []
    found = ctx.txn.find_objects(
        Selection(classes=[SET_CLASS, DESCRIPTOR_CLASS], ids=ids, ids_only=True)
    )
    sets = [r.id for r in found if r.cls == SET_CLASS]
    delete_sets(ctx, sets)
    delete_descriptors(ctx, [r.id for r in found if r.cls == DESCRIPTOR_CLASS])
    mine = {r.id for r in found}
    return [i for i in ids if i not in mine]


# --- find and classify ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Ask:
    """What a k-NN command asks, before its set is known."""

    name: str
    blob: BlobInput
    k: int
    metric: str | None
    engine: str | None
    knn_first: bool


@dataclass(frozen=True)
class _Knn:
    s: DescriptorSet
    query: np.ndarray
    k: int
    metric: str
    approximate: bool
    knn_first: bool
    ask: _Ask
    # False: `s` came from the catalog of sets this process searched (VectorIndexes.catalog),
    # not from this query's snapshot; the first read of the hits reads the set's row too.
    confirmed: bool = True


def _knn_params(ctx: Context, p: Params, default_k: int | None = None) -> _Knn:
    k = p.get("k_neighbors", default_k)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise QueryError(f"'k_neighbors' must be an integer of at least 1, got {k!r}")
    blob = ctx.next_blob()
    name = p.str("set")
    if name is None:
        raise QueryError("'set' is required with 'k_neighbors': name the descriptor set to search")
    ask = _Ask(
        name,
        blob,
        k,
        p.str("metric"),
        p.str("engine"),
        p.bool("knn_first", p.bool("knnfirst", True)),
    )
    if name not in _state(ctx).sets and not ctx.extra.get("writes"):
        known = _indexes(ctx).catalog.get(name)
        if known is not None:
            try:
                return _resolve(ask, known, confirmed=False)
            except QueryError:
                pass  # maybe made again since, differently: the answer comes from its row
    return _confirm(ctx, ask)


def _confirm(ctx: Context, ask: _Ask) -> _Knn:
    """The k-NN request against the set as this query's snapshot has it."""
    s = _set(ctx, ask.name)
    if not ctx.extra.get("writes"):  # a committed row (a write's could still roll back)
        _indexes(ctx).catalog[ask.name] = s
    return _resolve(ask, s, confirmed=True)


def _resolve(ask: _Ask, s: DescriptorSet, *, confirmed: bool) -> _Knn:
    query = _vector(ask.blob, s)
    metric = _choose(ask.metric, "metric", s.metrics)
    engine = _choose(ask.engine, "engine", s.engines)
    return _Knn(
        s, query, ask.k, metric, engine in APPROXIMATE_ENGINES, ask.knn_first, ask, confirmed
    )


def _choose(value: str | None, key: str, have: tuple[str, ...]) -> str:
    if value is None:
        return have[0]
    if value not in have:
        raise QueryError(f"'{key}' {value!r} is not one of this set's: {', '.join(have)}")
    return value


def find(ctx: Context, body: object) -> dict[str, Any]:
    p = Params(body, FIND_DESCRIPTOR)
    shape = parse_shape(p, DESCRIPTOR_FLAGS)
    for flag in ("knn_first", "knnfirst", "indexed_results_only"):
        p.bool(flag)  # checked even when no k-NN search uses them
    filters = combine(
        parse_constraints(p.get("constraints")),
        Compare("_label", "==", p.str("with_label")) if "with_label" in p else None,
    )
    traversal = traverse(ctx, p.get("is_connected_to")) if "is_connected_to" in p else None

    def blob_of(rows: list[Row]) -> list[bytes]:
        return stored_blobs(ctx, rows)  # type: ignore[arg-type]

    if "k_neighbors" not in p:
        if "_distance" in shape.keys:
            shape.keys.remove("_distance")  # no query vector, no distance
        where = combine(_scope(p), filters)
        return run_find(
            ctx,
            p,
            shape,
            classes=[DESCRIPTOR_CLASS],
            where=where,
            traversal=traversal,
            fetch=ctx.txn.find_objects,
            count=ctx.txn.count_objects,
            blob_of=blob_of,
        )

    knn = _knn_params(ctx, p)
    ranked: list[ObjectRow] | None = None

    def rows() -> list[ObjectRow]:
        nonlocal ranked
        if ranked is None:
            allowed = traversal.ids if traversal is not None else None
            ranked = nearest(ctx, knn, filters, allowed)
        return ranked

    def fetch(sel: Selection) -> list:
        out = rows()
        end = None if sel.limit is None else sel.offset + sel.limit
        return out[sel.offset : end]

    return run_find(
        ctx,
        p,
        shape,
        classes=[DESCRIPTOR_CLASS],
        where=None,
        traversal=traversal,
        fetch=fetch,
        count=lambda sel: len(rows()),
        blob_of=blob_of,
    )


def nearest(
    ctx: Context, knn: _Knn, filters: Predicate | None, allowed: list[int] | None
) -> list[ObjectRow]:
    """The k-NN answer as rows of the query's snapshot, best first, `_distance` in props.

    knn_first: the k nearest of the set, then those passing the filters (so possibly fewer
    than k). Otherwise the k nearest among those passing them: exact over the matches when
    they are few (SELECTIVE_SHARE of the set), else the index searched with over-fetching.
    """
    if knn.knn_first or (filters is None and allowed is None):
        if not knn.confirmed:
            vs = _indexes(ctx).get(knn.s.id)
            top = _visible_top(ctx, vs, knn, None, None) if vs is not None else None
            if top is not None:
                return _keep(ctx, top, filters, allowed)
            knn = _confirm(ctx, knn.ask)  # gone, made again, or newer than the index
        top = _visible_top(ctx, index_of(ctx, knn.s), knn, None, None)
        assert top is not None  # (only an unconfirmed set gives none)
        return _keep(ctx, top, filters, allowed)
    if not knn.confirmed:
        knn = _confirm(ctx, knn.ask)
    vs = index_of(ctx, knn.s)
    scope = Compare("_set_name", "==", knn.s.name)
    matches = Selection(classes=[DESCRIPTOR_CLASS], where=combine(scope, filters), ids=allowed)
    if ctx.txn.count_objects(matches) <= max(knn.k, SELECTIVE_SHARE * len(vs)):
        candidates = ctx.txn.find_objects(matches)
        by_id = {r.id: r for r in candidates}
        ids, dists = vs.search(knn.query, knn.k, knn.metric, approximate=False, among=list(by_id))
        return [_with_distance(by_id[i], d) for i, d in zip(ids, dists, strict=True)]
    top = _visible_top(ctx, vs, knn, filters, allowed)
    assert top is not None
    return top


def _visible_top(
    ctx: Context, vs: VectorSet, knn: _Knn, filters: Predicate | None, allowed: list[int] | None
) -> list[ObjectRow] | None:
    """The k best index hits that the snapshot holds (and that pass `filters`), fetching more
    from the index until k are found or the index has no more.

    With a set not yet confirmed (`knn.confirmed`, only without filters), its row is read in
    the same statement as the first hits: None when it is gone or newer than the index (which
    must catch up first). One statement instead of a look-up of the set before the search,
    which took 6 % of a k-NN query (20,000 x 512, sampled with py-spy): 5.8 us of SQL (timeit)
    and the Python around it.
    """
    allowed_set = set(allowed) if allowed is not None else None
    s, check = knn.s, not knn.confirmed and filters is None and allowed is None
    # Usually every hit is visible: ask for k, and for more only when some were not.
    want = knn.k if filters is None and allowed is None else 4 * knn.k
    while True:
        version = vs.version  # (an index only moves forward: it is at least this new)
        hits, dists = vs.search(knn.query, want, knn.metric, approximate=knn.approximate)
        ids = hits if allowed_set is None else [i for i in hits if i in allowed_set]
        # The ids come from this set's index (ids are never reused), so neither a set nor a
        # class condition: with the set's, SQLite may pick the _set_name index and scan the
        # whole set (0.65 ms at 100,000); with the class, it looks each id up in the class
        # index before the row (13.8 against 11.0 us for 10 ids).
        rows = ctx.txn.find_objects(Selection(where=filters, ids=[*ids, s.id] if check else ids))
        found = {r.id: r for r in rows}
        if check:
            check = False
            row = found.pop(s.id, None)
            if row is None or row.cls != SET_CLASS:
                return None
            s = _state(ctx).sets[s.name] = DescriptorSet.of(row)
            if s.version > version:
                return None
        out = []
        for i, d in zip(hits, dists, strict=True):
            row = found.get(i)
            if row is not None:
                row.props["_distance"] = d
                out.append(row)
        if filters is None and len(found) < len(ids):
            _forget_deleted(vs, s, [i for i in ids if i not in found])
        if len(out) >= knn.k or len(hits) < want or want >= len(vs):
            return out[: knn.k]
        want *= 4


def _forget_deleted(vs: VectorSet, s: DescriptorSet, ids: list[int]) -> None:
    """Hits the snapshot lacks although it is as new as the index: deleted (by another process,
    or by a DeleteEntity this one did not see as descriptors'); drop them from the index."""
    with vs.lock:
        if s.version >= vs.version:
            vs.remove(ids)


def _keep(
    ctx: Context, rows: list[ObjectRow], filters: Predicate | None, allowed: list[int] | None
) -> list[ObjectRow]:
    if allowed is not None:
        allowed_set = set(allowed)
        rows = [r for r in rows if r.id in allowed_set]
    if filters is None or not rows:
        return rows
    ok = {
        r.id
        for r in ctx.txn.find_objects(
            Selection(classes=[DESCRIPTOR_CLASS], where=filters, ids=[r.id for r in rows])
        )
    }
    return [r for r in rows if r.id in ok]


def _with_distance(row: ObjectRow, distance: float) -> ObjectRow:
    row.props["_distance"] = distance
    return row


def classify(ctx: Context, body: object) -> dict[str, Any]:
    p = Params(body, KNN)
    knn = _knn_params(ctx, p, default_k=1)
    rows = nearest(ctx, knn, Compare("_label", "!=", NO_LABEL), None)
    rows = [r for r in rows if r.props.get("_label") not in (None, NO_LABEL)]
    if not rows:
        raise QueryError("No labels, cannot classify: none of the nearest descriptors has a label")
    votes = Counter(r.props["_label"] for r in rows)
    best = max(votes.values())
    # Ties go to the label of the nearest descriptor among the tied ones.
    label = next(r.props["_label"] for r in rows if votes[r.props["_label"]] == best)
    return answer(label=label)


# --- the index: load, catch up, apply ------------------------------------------------------------


def index_of(ctx: Context, s: DescriptorSet) -> VectorSet:
    """The set's in-memory index, loaded from the stored rows or caught up with them."""
    indexes = _indexes(ctx)
    vs = indexes.get(s.id)
    if vs is not None and vs.version >= s.version:
        return vs  # the common case: current
    if ctx.extra.get("writes"):
        _state(ctx).read_in_write.add(s.id)
    log = ctx.txn if isinstance(ctx.txn, ChangeLog) else None
    fresh = vs is None
    if vs is None:  # read back from its saved copy (maybe older: caught up below) or built
        seq = log.last_change(s.id) if log is not None else None  # same snapshot as the rows
        vs = indexes.load(s.id, s.dimensions, s.version, lambda: _stored(ctx, s, None), seq)
    if vs.version < s.version:
        with vs.lock:
            if vs.version < s.version:
                if log is not None and vs.seq is not None:
                    # Another server's commits: replay the change log's entries since ours, or,
                    # when the log no longer reaches back that far (trimmed), compare.
                    if not _replay(ctx, s, vs, log):
                        _compare(ctx, s, vs)
                        vs.seq = log.last_change(s.id)  # (the snapshot of the rows compared)
                elif fresh or not ctx.store.ids_in_commit_order:
                    # A saved copy from before a crash or another process's writes, or another
                    # server's commits whose ids need not be above ours.
                    _compare(ctx, s, vs)
                else:
                    # Loaded and kept current here, so only another process's (or server's)
                    # commits are missing: their new rows have higher ids. The vectors they
                    # deleted leave the index when a search meets them (_visible_top).
                    vs.add(*_stored(ctx, s, _rows_after(ctx, s, vs.max_id)))
                vs.version = s.version
    return vs


def _compare(ctx: Context, s: DescriptorSet, vs: VectorSet) -> None:
    """Bring the index to the set's rows by comparing every id once (vectors are read only for
    the rows the index lacks)."""
    have = vs.ids()
    stored = {r.id: r for r in _rows(ctx, s)}
    vs.remove(have - stored.keys())
    new = [r for i, r in stored.items() if i not in have]
    vs.add(*_stored(ctx, s, new))


def _replay(ctx: Context, s: DescriptorSet, vs: VectorSet, log: ChangeLog) -> bool:
    """Apply the change log's entries after `vs.seq`: removals, and the added rows' vectors
    (read only for ids the index lacks; entries this server applied itself are skipped).
    False when the log was trimmed past `vs.seq`: nothing is applied then."""
    changes = log.changes_since(s.id, vs.seq or 0)
    if changes is None:
        return False
    if not changes:
        return True
    last: dict[int, bool] = {}
    for c in changes:
        last[c.object_id] = c.removed  # ids are never reused: the last entry is the state
    vs.remove([i for i, gone in last.items() if gone])
    added = [i for i, gone in last.items() if not gone and i not in vs]
    if added:
        rows = ctx.txn.find_objects(Selection(classes=[DESCRIPTOR_CLASS], ids=added))
        vs.add(*_stored(ctx, s, rows))
    vs.seq = changes[-1].seq
    return True


def _rows_after(ctx: Context, s: DescriptorSet, max_id: int, page: int = 512) -> list[ObjectRow]:
    """The set's rows with ids above `max_id`, newest first, read a page at a time."""
    out: list[ObjectRow] = []
    offset = 0
    while True:
        rows = ctx.txn.find_objects(
            Selection(
                classes=[DESCRIPTOR_CLASS],
                where=Compare("_set_name", "==", s.name),
                sort=[SortKey("_uniqueid", descending=True)],
                offset=offset,
                limit=page,
            )
        )
        newer = [r for r in rows if r.id > max_id]
        out += newer
        if len(newer) < len(rows) or len(rows) < page:
            return out
        offset += page


def load_all(ctx: Context) -> int:
    """Load every set's index (see Database.load_vector_indexes)."""
    rows = ctx.txn.find_objects(Selection(classes=[SET_CLASS]))
    for row in rows:
        index_of(ctx, DescriptorSet.of(row))
    return len(rows)


def sync_loaded(ctx: Context, loaded: list[int]) -> tuple[int, list[int]]:
    """Catch up the loaded indexes (`loaded`: their set ids, taken before this snapshot) whose
    set another process or server changed, and unload those whose set is gone (see
    Database.sync_vector_indexes). Returns (how many were caught up, the ids unloaded)."""
    indexes = _indexes(ctx)
    present = {
        r.id: DescriptorSet.of(r)
        for r in ctx.txn.find_objects(Selection(classes=[SET_CLASS], ids=loaded))
    }
    gone = [i for i in loaded if i not in present]
    if gone:
        indexes.unload(gone)
        for name, s in list(indexes.catalog.items()):
            if s.id in gone:
                indexes.catalog.pop(name, None)
    behind = 0
    for s in present.values():
        vs = indexes.get(s.id)
        if vs is not None and vs.version < s.version:
            index_of(ctx, s)
            behind += 1
    return behind, gone


def _rows(ctx: Context, s: DescriptorSet) -> list[ObjectRow]:
    return ctx.txn.find_objects(
        Selection(classes=[DESCRIPTOR_CLASS], where=Compare("_set_name", "==", s.name))
    )


def _stored(
    ctx: Context, s: DescriptorSet, rows: list[ObjectRow] | None
) -> tuple[list[int], np.ndarray]:
    rows = _rows(ctx, s) if rows is None else rows
    with_blob = [r for r in rows if r.blob is not None]
    ids = [r.id for r in with_blob]
    vectors = np.empty((len(ids), s.dimensions), dtype=np.float32)
    for start in range(
        0, len(with_blob), 1024
    ):  # a batch of reads per page (one pack, or parallel S3 GETs)
        chunk = with_blob[start : start + 1024]
        for n, data in enumerate(stored_blobs(ctx, chunk), start):  # type: ignore[arg-type]
            vectors[n] = _decode_stored(data, s.dimensions)
    return ids, vectors


def before_commit(ctx: Context) -> None:
    """Bump the `_version` of every set whose vectors this query changed (in its transaction)."""
    st = ctx.extra.get("descriptors")
    if st is None:
        return
    log = ctx.txn if isinstance(ctx.txn, ChangeLog) else None
    for set_id, ch in st.changes.items():
        if set_id not in st.dropped:
            ctx.txn.update_objects([set_id], {"_version": ch.base + 1}, [])
            if log is not None:
                ch.seq = log.log_changes(set_id, ch.ids, sorted(ch.removed))
    if log is not None:
        for set_id in st.dropped:
            log.drop_changes(set_id)


def after_rollback(ctx: Context, indexes: VectorIndexes) -> None:
    """Unload indexes that read this transaction's rows: they may hold its rolled-back vectors
    (the next search reads them again, from their saved copy or the rows)."""
    st = ctx.extra.get("descriptors")
    if st is not None and st.read_in_write:
        indexes.unload(st.read_in_write)


def after_commit(ctx: Context, indexes: VectorIndexes) -> None:
    """Apply a committed query's vector changes to the loaded indexes."""
    st = ctx.extra.get("descriptors")
    if st is None:
        return
    indexes.drop(st.dropped)
    if st.dropped:
        for name, s in list(indexes.catalog.items()):
            if s.id in st.dropped:
                indexes.catalog.pop(name, None)
    for set_id, ch in st.changes.items():
        vs = indexes.get(set_id)
        if vs is None or set_id in st.dropped:
            continue
        with vs.lock:
            if vs.version != ch.base:
                continue  # the index lags or is ahead; the next search catches it up
            if ch.ids:
                vs.add(ch.ids, np.stack(ch.vectors))
            vs.remove(ch.removed)
            vs.version = ch.base + 1
            if vs.seq is not None and ch.seq:
                # Current up to this commit's entries (the newest of the set when it committed):
                # a later replay starts after them, and a trim of the log up to them is no
                # reason to compare every id.
                vs.seq = max(vs.seq, ch.seq)
