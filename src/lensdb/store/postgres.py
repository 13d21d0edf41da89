"""The scale-out backend: rows in PostgreSQL, blob packs in S3 or a shared folder.

Same data model and the same semantics as the SQLite store (sqlite.py): one `objects` table
whose `props` column holds the properties (jsonb here), one `connections` table, expression
indexes for CreateIndex. How each SQLite rule is kept:

- Typed comparisons: a number matches only numbers (`jsonb_typeof = 'number'`, compared as
  jsonb, which compares numbers by value), a string only strings (compared as text in the "C"
  collation, i.e. by code point like SQLite's BINARY, whatever the database's locale).
- Null rules: `== None` is "the key is absent" (`props->'k' IS NULL`); `!=` and `not in` with a
  value also match objects lacking the key (`NOT coalesce(..., false)`).
- Dates compare by time through their `_ts` member, as in SQLite.
- Sort order: absent values first, then numbers, booleans (as 0/1) and dates (by time), then
  strings and JSON values; ties by id. Three sort terms (rank, number, text) give SQLite's
  cross-type order, which no single PostgreSQL type has.
- CreateIndex builds three expression indexes per key, (class, value as jsonb), (class, value as
  C-collated text), (class, date time), which are the very expressions the predicates use.

Writes are serialised across every server by one transaction-level advisory lock, the writer
lock. `if_not_found` takes an arbitrary predicate (any constraint, any class), so no unique
constraint can express it; one writer at a time keeps the engine's look-up-then-insert exact,
as SQLite's single writer does. Blob bytes, the slow part, are uploaded before the lock is
taken, so concurrent writers still overlap their uploads.

A query does not hold the lock while it reads and the engine works, though: it is optimistic
(`write(optimistic=True)`, what the engine asks for). Its reads go without the lock, each
returning with its rows a digest of them computed by the same statement (`_fingerprinted`); its
new rows wait in a buffer; the lock is taken with its first write, usually the commit, and in
that same pipeline every earlier read runs again and must give the same digest
(`lensdb_expect_same`) before any row is written. If one differs, another query committed
something this one read in between (the if_not_found object it found absent, the image its box
is bound to, the boxes of an image it deletes): the transaction rolls back (staged bytes stay
staged) and the engine runs the query once more, holding the lock from its first statement as
every write did before. Either way a query acts as if it ran whole at its commit, and one that
fails on what it read is checked the same way before its error is answered. The reading
transaction ends before the lock is requested, so its table locks never wait along with the
lock (a RemoveIndex holding it waits for readers to go). Rows are inserted only under the lock,
so a CreateIndex holding it never waits for a writer that waits for it. Queries touching
descriptors stay pessimistic: their in-memory indexes follow the rows in ways this does not
check.

Why: pessimistic, a ParallelLoader query held the lock from its look-ups to its COMMIT (the
look-ups' reply, the engine's work on 100 or 200 commands, the commit's round trip), and
every other writer of every server queued meanwhile. Optimistic, it holds it for one pipeline
that PostgreSQL runs without a client round trip in it (checks, inserts, COMMIT).
bench/scale_ingest.py --images 10000 (10,000 JPEGs + 20,000 boxes, 8 client threads, 2 cores
shared with other jobs; three runs each, alternating), sampling pg_locks every 2 ms: before,
the lock was held 39-42% of the ingest with one server, 0.9-1.3 queries waiting for it on
average (22-41% and 0.4-1.4 with two servers); after, 16-24% and 0.1-0.2 waiting (13-23%,
0.1-0.2 with two). The lock is no longer a queue. Throughput did not move (one server
1,016-1,132 images/s before, 1,034-1,151 after; two servers / one 0.92-1.15x before,
0.99-1.12x after): the lock serialised one server's eight threads exactly as it did two
servers' four each, and what binds now is CPU: CPU time per process over a 3,000-image
ingest on one server, from /proc, was the SDK client 57% of a core, the server 39%, PostgreSQL
13%, moto 3%, with the machine 91% busy (other jobs took about one core). One server process
is far from saturated, so a second has nothing to relieve here; it has where one saturates
(more cores, more clients than one process serves). Three later runs on a quieter machine
(65-78% busy, the lock held 24-32% with one server, 0.1-0.2 waiting): two servers / one
1.14x, 0.78x, 1.00x; with 8 client threads in all, either way, the queries in flight and
their latency are the same.

Blobs: a query's new blobs are one pack (see blobfiles.py), uploaded before its transaction
under a row of `blob_intents` owned by this process. Each process holds a session advisory lock
named by its owner number for as long as it lives, so a sweeper tells a crashed writer's intents
(lock free) from a live one's. The committing transaction deletes its intent row, and fails if a
sweeper took it first, so no row ever points at swept bytes. A deleted pack waits in
`blob_trash` until every open transaction's snapshot started after the delete committed
(`backend_xmin` of all sessions), so a running read never loses bytes it can still see.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import re
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from lensdb.store.base import (
    ID_OPS,
    AllOf,
    AnyOf,
    BlobBackend,
    BlobCheck,
    BlobMissing,
    Change,
    ClassIn,
    ClassStats,
    Compare,
    ConnectionRow,
    DateValue,
    FileRange,
    IdCompare,
    IdIn,
    Not,
    ObjectRow,
    OneOf,
    Predicate,
    Selection,
    StoreError,
    WriteConflict,
)
from lensdb.store.blobfiles import compare_packs, is_thin, length_of, new_name, place
from lensdb.store.compaction import compact
from lensdb.store.factory import ConfigError, redact

log = logging.getLogger(__name__)

SCHEMA_VERSION = 5
SWEPT = "LD001"  # SQLSTATE of lensdb_settle_intent: a sweeper removed the intent first
CHANGED = "LD002"  # SQLSTATE of lensdb_expect_same: a row read without the lock changed
SWEEP_EVERY = 60.0  # seconds between sweeps a writing server makes of the whole database
# How long change-log entries are kept (trimmed with the sweep, every SWEEP_EVERY seconds). A
# running server replays its loaded indexes every half second, so only one that was stopped,
# frozen or cut off for longer stands before the trimmed entries: it compares its index with the
# set's rows once (one read of the rows; vectors only for the ids it lacks) instead of
# replaying. Without trimming the log grows by one row per descriptor ever added or removed.
KEEP_CHANGES_FOR = 3600.0
# Advisory lock keys (two int4 halves): the first is lensdb's namespace.
_NS = 0x6C6E7364  # "lnsd"
_WRITER = 1
_MIGRATE = 2
_OWNER_NS = _NS + 1  # (this, owner number): held by each live process
_PACK_SIZES_KEPT = 65_536  # pack sizes blob_url keeps (about 100 bytes each)
WRITER_LOCK = (_NS, _WRITER)  # the writer lock's keys, for tools that watch it (pg_locks)

# Each migration runs once, in order, in one transaction under the migration lock; none drops
# data. A new version appends an entry; an existing entry never changes.
MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
CREATE TABLE objects (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    class text NOT NULL,
    props jsonb NOT NULL DEFAULT '{}',
    blob text,
    pack text GENERATED ALWAYS AS (split_part(blob, '.', 1)) STORED
);
CREATE INDEX objects_by_class ON objects(class);
CREATE INDEX objects_by_pack ON objects(pack) WHERE pack IS NOT NULL;
CREATE TABLE connections (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    class text NOT NULL,
    src bigint NOT NULL,
    dst bigint NOT NULL,
    props jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX connections_by_src ON connections(src, class);
CREATE INDEX connections_by_dst ON connections(dst, class);
CREATE INDEX connections_by_class ON connections(class);
CREATE TABLE property_indexes (
    kind text NOT NULL, class text NOT NULL, key text NOT NULL, name text NOT NULL,
    PRIMARY KEY (kind, class, key)
);
CREATE TABLE blob_intents (
    pack text PRIMARY KEY,
    owner integer NOT NULL,
    created timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE blob_trash (
    pack text PRIMARY KEY,
    xid xid8 NOT NULL DEFAULT pg_current_xact_id()
);
""",
    ),
    (
        2,
        # The change log (base.ChangeLog): one row per descriptor added or removed, numbered in
        # commit order, which each server reads to keep its in-memory vector index current.
        """
CREATE TABLE changes (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    topic bigint NOT NULL,
    object_id bigint NOT NULL,
    removed boolean NOT NULL
);
CREATE INDEX changes_by_topic ON changes(topic, seq);
""",
    ),
    (
        3,
        # Removing a query's intent in its committing transaction, and failing it when a
        # sweeper took the intent first, as one statement: it can go in the commit's pipeline.
        """
CREATE FUNCTION lensdb_settle_intent(p text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM blob_intents WHERE pack = p;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'the intent of pack % was swept', p USING ERRCODE = 'LD001';
    END IF;
END $$;
""",
    ),
    (
        4,
        # Trimming the change log (PostgresStore.trim_changes): each entry's time, and per topic
        # the highest sequence number trimmed, below which a server cannot replay (it compares
        # its index with the rows instead).
        """
ALTER TABLE changes ADD COLUMN at timestamptz NOT NULL DEFAULT now();
CREATE TABLE change_horizons (
    topic bigint PRIMARY KEY,
    seq bigint NOT NULL
);
""",
    ),
    (
        5,
        # Optimistic writes (PostgresTxn): what a query read before it took the writer lock is
        # read again under the lock, in the commit's pipeline, and the transaction fails here
        # when the answer differs.
        """
CREATE FUNCTION lensdb_expect_same(same boolean) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF same IS NOT TRUE THEN
        RAISE EXCEPTION 'a row this query read changed before it could commit'
            USING ERRCODE = 'LD002';
    END IF;
END $$;
""",
    ),
]


# A float written with a positive exponent (6.02e+23) would come back from jsonb's numeric as an
# integer; written out in full with a fraction ("602000...0.0") it comes back a float, unchanged.
_BIG_FLOAT = re.compile(r'"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?[eE]\+\d+')


def _big_float(m: re.Match) -> str:
    token = m.group(0)
    if token[0] == '"':
        return token
    text = f"{Decimal(token):f}"  # the same decimal value a jsonb parameter of it has
    return text if "." in text else text + ".0"


def dumps(value: Any) -> str:
    """JSON text for a jsonb column that keeps every value's type through the round trip."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if "\\u0000" in text:
        raise StoreError(
            "PostgreSQL cannot store the character U+0000 in a string: remove it "
            "from the property value"
        )
    return _BIG_FLOAT.sub(_big_float, text) if "e+" in text or "E+" in text else text


def _json(value: Any) -> Jsonb:
    return Jsonb(value, dumps)


def _lit(key: str) -> str:
    """A property key as a SQL string literal (keys hold no quotes; % is doubled for psycopg)."""
    return "'" + key.replace("'", "''").replace("%", "%%") + "'"


def _v(key: str) -> str:
    return f"(props->{_lit(key)})"


def _t(key: str) -> str:
    return f'((props->>{_lit(key)}) COLLATE "C")'


def _ts(key: str) -> str:
    return f"(props->{_lit(key)}->'_ts')"


class _Compiler:
    """Predicate tree -> SQL text with %s parameters, for a table with `id`, `class`, `props`."""

    def __init__(self) -> None:
        self.params: list[Any] = []

    def compile(self, pred: Predicate) -> str:
        if isinstance(pred, AllOf):
            return "(" + " AND ".join(map(self.compile, pred.parts)) + ")" if pred.parts else "true"
        if isinstance(pred, AnyOf):
            return "(" + " OR ".join(map(self.compile, pred.parts)) + ")" if pred.parts else "false"
        if isinstance(pred, Not):
            return f"NOT coalesce({self.compile(pred.part)}, false)"
        if isinstance(pred, ClassIn):
            sql = self._any("class", list(pred.classes)) if pred.classes else "false"
            return f"NOT ({sql})" if pred.negate else sql
        if isinstance(pred, IdCompare):
            self.params.append(pred.id)
            return f"id {ID_OPS[pred.op]} %s"
        if isinstance(pred, IdIn):
            sql = self._any("id", list(pred.ids)) if pred.ids else "false"
            return f"NOT ({sql})" if pred.negate else sql
        if isinstance(pred, Compare):
            if pred.op == "!=" and pred.value is not None:
                return f"NOT coalesce({self._compare(pred.key, '=', pred.value)}, false)"
            return self._compare(pred.key, "=" if pred.op == "==" else pred.op, pred.value)
        if isinstance(pred, OneOf):
            sql = self._one_of(pred.key, pred.values)
            return f"NOT coalesce({sql}, false)" if pred.negate else sql
        raise TypeError(f"unknown predicate {pred!r}")

    def _any(self, expr: str, values: list[Any]) -> str:
        self.params.append(values)
        return f"{expr} = ANY(%s)"

    def _compare(self, key: str, op: str, value: Any) -> str:
        if value is None:
            return f"{_v(key)} IS {'NOT ' if op == '!=' else ''}NULL"
        if isinstance(value, bool):
            return f"{_v(key)} = '{'true' if value else 'false'}'::jsonb"
        if isinstance(value, DateValue):
            self.params.append(Jsonb(value.ts))
            return f"{_ts(key)} {op} %s"
        if isinstance(value, str):
            self.params.append(value)
            return f"(jsonb_typeof({_v(key)}) = 'string' AND {_t(key)} {op} %s)"
        if isinstance(value, float) and not math.isfinite(value):  # no JSON for it: as numeric
            self.params.append(value)
            return (
                f"(CASE WHEN jsonb_typeof({_v(key)}) = 'number' THEN ({_v(key)})::numeric "
                f"END {op} %s::numeric)"
            )
        self.params.append(Jsonb(value))
        return f"(jsonb_typeof({_v(key)}) = 'number' AND {_v(key)} {op} %s)"

    def _one_of(self, key: str, values: Sequence[Any]) -> str:
        nums = [
            Jsonb(v)
            for v in values
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        ]
        strs = [v for v in values if isinstance(v, str)]
        dates = [Jsonb(v.ts) for v in values if isinstance(v, DateValue)]
        bools = sorted({("true" if v else "false") for v in values if isinstance(v, bool)})
        parts = []
        if nums:
            parts.append(f"(jsonb_typeof({_v(key)}) = 'number' AND {self._any(_v(key), nums)})")
        if strs:
            parts.append(f"(jsonb_typeof({_v(key)}) = 'string' AND {self._any(_t(key), strs)})")
        if dates:
            parts.append(self._any(_ts(key), dates))
        if bools:
            listed = ",".join(f"'{b}'::jsonb" for b in bools)
            parts.append(f"{_v(key)} IN ({listed})")
        if any(v is None for v in values):
            parts.append(f"{_v(key)} IS NULL")
        return "(" + " OR ".join(parts) + ")" if parts else "false"


def _order_by(sel: Selection) -> str:
    terms = []
    for s in sel.sort:
        d = "DESC" if s.descending else "ASC"
        if s.key == "_uniqueid":
            terms.append(f"id {d}")
            continue
        v, ts = _v(s.key), _ts(s.key)
        # SQLite's order of json_extract values: NULL < numbers (booleans as 0/1, dates by time)
        # < text (strings, and JSON objects and arrays as their text).
        rank = (
            f"CASE WHEN jsonb_typeof({ts}) = 'number' OR jsonb_typeof({v}) IN "
            f"('number', 'boolean') THEN 1 WHEN {v} IS NULL OR {v} = 'null'::jsonb THEN 0 "
            "ELSE 2 END"
        )
        num = (
            f"CASE WHEN jsonb_typeof({ts}) = 'number' THEN ({ts})::numeric "
            f"WHEN jsonb_typeof({v}) = 'number' THEN ({v})::numeric "
            f"WHEN {v} = 'true'::jsonb THEN 1 WHEN {v} = 'false'::jsonb THEN 0 END"
        )
        text = (
            f"(CASE WHEN jsonb_typeof({v}) = 'string' THEN props->>{_lit(s.key)} "
            f'ELSE ({v})::text END) COLLATE "C"'
        )
        terms += [f"{rank} {d}", f"{num} {d}", f"{text} {d}"]
    terms.append("id ASC")  # stable order for paging
    return " ORDER BY " + ", ".join(terms)


def _where(sel: Selection, params: list[Any], extra: list[str] | None = None) -> str:
    clauses = list(extra or [])
    if sel.classes is not None:
        if len(sel.classes) == 1:
            clauses.append("class = %s")
            params.append(sel.classes[0])
        elif sel.classes:
            clauses.append("class = ANY(%s)")
            params.append(list(sel.classes))
        else:
            clauses.append("false")
    if sel.ids is not None:
        clauses.append("id = ANY(%s)" if sel.ids else "false")
        if sel.ids:
            params.append(list(sel.ids))
    if sel.where is not None:
        c = _Compiler()
        clauses.append(c.compile(sel.where))
        params.extend(c.params)
    return (" WHERE " + " AND ".join(clauses)) if clauses else ""


def _limit(sel: Selection, params: list[Any]) -> str:
    if sel.limit is None and not sel.offset:
        return ""
    params.extend([sel.limit, sel.offset])
    return " LIMIT %s OFFSET %s"


def _reserve(table: str, n: int) -> tuple[str, tuple[int]]:
    """The next n ids of a table's sequence."""
    seq = f"pg_get_serial_sequence('{table}', 'id')"
    return f"SELECT nextval({seq}) FROM generate_series(1, %s)", (n,)


@contextmanager
def _unprepared(conn: psycopg.Connection) -> Iterator[None]:
    """No server-side prepared statements in a write transaction. psycopg prepares a statement
    after 5 runs; a write's pipeline aborted by a failed check (an optimistic write's conflict)
    left its cache naming statements the server never prepared ("prepared statement _pg3_8
    does not exist" in 2 of 6 runs of the two-process if_not_found test; 0 of 6 without). Reads
    keep them: FindEntity by an indexed property cost 345 us a lookup unprepared, against
    274 us prepared, 207 us through raw psycopg (bench/postgres.py)."""
    threshold = conn.prepare_threshold
    conn.prepare_threshold = None
    try:
        yield
    finally:
        conn.prepare_threshold = threshold


def _fingerprinted(sql: str) -> str:
    """`sql`'s rows, each with one more column: a digest of all of them, in order (NULL for
    none). Computed in the statement itself, so it describes exactly the rows returned."""
    return (
        f"WITH q AS MATERIALIZED ({sql}) "
        "SELECT q.*, (SELECT md5(string_agg(q::text, '|')) FROM q) FROM q"
    )


def _check_same(sql: str) -> str:
    """A statement that fails (CHANGED) unless `sql`'s rows still have this digest (the
    last parameter): the same digest expression over the same plan as `_fingerprinted`."""
    return (
        f"WITH q AS MATERIALIZED ({sql}) SELECT lensdb_expect_same("
        "(SELECT md5(string_agg(q::text, '|')) FROM q) IS NOT DISTINCT FROM %s::text)"
    )


def _find_sql(sel: Selection) -> tuple[str, list[Any]]:
    params: list[Any] = []
    sql = (
        "SELECT id, class, props, blob FROM objects"
        + _where(sel, params)
        + _order_by(sel)
        + _limit(sel, params)
    )
    return sql, params


_ABSENT = object()


def _kind(value: Any) -> str:
    """ "string" or "number" for a value an `==` look-up compares by Python equality exactly as
    PostgreSQL does (strings by code point, finite numbers by value); "" for any other."""
    if isinstance(value, str):
        return "string"
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return "number"
    return ""


def _lookup(sel: Selection) -> tuple[str, str, str, Any, int | None] | None:
    """(class, key, kind, value, limit) of a look-up by one property's value in one class,
    in id order; None for any other selection."""
    where = sel.where
    if (
        sel.classes is None
        or len(sel.classes) != 1
        or sel.ids is not None
        or sel.sort
        or sel.offset
        or not isinstance(where, Compare)
        or where.op != "=="
    ):
        return None
    kind = _kind(where.value)
    return (sel.classes[0], where.key, kind, where.value, sel.limit) if kind else None


class _Lookups:
    """Look-ups by one property's value (`class == C and key == value`, no sort: ids in order,
    at most `limit`), the shape of every `if_not_found` and `unique` Find a CSV loader sends,
    grouped so that all values of one (class, key, type, limit) are one statement: a join
    with the values' array, then the first `limit` ids of each. One scan (or one index probe
    per value) instead of one statement per value; the predicates are `_Compiler`'s own."""

    def __init__(self) -> None:
        # (class, key, "number"|"string", limit) -> {repr(selection): value}
        self.groups: dict[tuple[str, str, str, int | None], dict[str, Any]] = {}

    def add(self, sel: Selection) -> bool:
        """Take `sel` if it has the shape (True), else leave it to a statement of its own."""
        lookup = _lookup(sel)
        if lookup is None:
            return False
        cls, key, kind, value, limit = lookup
        wanted = Jsonb(value) if kind == "number" else value
        self.groups.setdefault((cls, key, kind, limit), {})[repr(sel)] = wanted
        return True

    def statements(self) -> Iterator[tuple[list[str], tuple[str, list[Any]]]]:
        """(selection keys, (sql, params)); a row's first column is its key's 1-based place."""
        for (cls, key, kind, limit), wanted in self.groups.items():
            # the same predicates as `_Compiler._compare`, against the joined value w.v
            if kind == "number":
                values, match = "%s::jsonb[]", f"jsonb_typeof({_v(key)}) = 'number' AND {_v(key)}"
            else:
                values, match = "%s::text[]", f"jsonb_typeof({_v(key)}) = 'string' AND {_t(key)}"
            # per value, the statement a single look-up would run (an index probe when
            # CreateIndex made one; a hash join would scan the whole class every query)
            sql = (
                f"SELECT w.ord, o.* FROM unnest({values}) WITH ORDINALITY AS w(v, ord) "
                "CROSS JOIN LATERAL (SELECT id, class, props, blob FROM objects "
                f"WHERE class = %s AND {match} = w.v ORDER BY id"
                + (" LIMIT %s" if limit is not None else "")
                + ") o"
            )
            params: list[Any] = [list(wanted.values()), cls]
            if limit is not None:
                params.append(limit)
            yield list(wanted), (sql, params)


def _excludes(sel: Selection, id: int, cls: str, props: dict[str, Any]) -> bool:
    """True when the object (id, cls, props) surely does not match `sel`; False when it may.
    Only what is certain under the SQL above counts: another class or id, or an `==` on a
    string or number that the property fails (absent, of another type, or another value;
    numbers compare by value in jsonb as in Python, strings by code point)."""
    if sel.classes is not None and cls not in sel.classes:
        return True
    if sel.ids is not None and id not in sel.ids:
        return True
    return sel.where is not None and _fails(sel.where, props)


def _fails(pred: Predicate, props: dict[str, Any]) -> bool:
    if isinstance(pred, AllOf):
        return any(_fails(p, props) for p in pred.parts)
    if not isinstance(pred, Compare) or pred.op != "==":
        return False
    want, have = pred.value, props.get(pred.key, _ABSENT)
    kind = _kind(want)
    if not kind:
        return False
    if kind == "number" and isinstance(have, float) and not math.isfinite(have):
        return False  # not stored as a jsonb number; leave it to PostgreSQL
    return _kind(have) != kind or have != want


def _index_name(kind: str, cls: str, key: str, member: str) -> str:
    digest = hashlib.sha1(f"{kind}\0{cls}\0{key}\0{member}".encode()).hexdigest()[:16]
    return f"pix_{digest}"


_INDEX_EXPRS = {"": _v, ".text": _t, "._ts": _ts}


# One statement per table for a query's new rows, their columns as arrays: PostgreSQL runs one
# INSERT instead of one per row (executemany), which took 24 ms of a 200-row commit's lock hold.
_INSERT = {
    "objects": "INSERT INTO objects(id, class, props, blob) "
    "SELECT * FROM unnest(%s::bigint[], %s::text[], %s::jsonb[], %s::text[])",
    "connections": "INSERT INTO connections(id, class, src, dst, props) "
    "SELECT * FROM unnest(%s::bigint[], %s::text[], %s::bigint[], %s::bigint[], %s::jsonb[])",
}


class PostgresTxn:
    """One transaction on one pooled connection.

    New rows are not inserted one round trip at a time: their ids come from the table's
    sequence in blocks (one statement per block), and the rows wait in a buffer that is sent
    as one pipelined batch (psycopg's executemany) together with the next statement that
    could read them, or with the commit.

    The look-ups a query will make (`prefetch`, planned by the engine from the whole query:
    its `if_not_found` adds and `unique` Finds) are sent as one pipeline at its start. A
    later `find_objects` of the same selection takes its rows from there when no row added
    since can match it and nothing was updated or deleted (any doubt: it reads as usual).
    The rows, the intent's settling and COMMIT go as one more pipeline: a ParallelLoader
    query of 100 AddImage, or of 100 boxes each finding its image, makes two round trips
    instead of two or three hundred. bench/scale_ingest.py (2,000 JPEGs + 4,000 boxes, on 2
    cores shared with other jobs; alternate runs): PostgreSQL+S3 / embedded was 0.41x twice
    before, 0.99x and 0.71x after. Each round trip costs the most when the machine is busy.

    Pessimistic (the default), the writer lock goes in the same pipeline as the first
    statement and is held to COMMIT. Optimistic (what the engine asks for first), the reads
    go without it and the lock is taken with the first write, usually in the commit's
    pipeline, followed there by the checks of what was read (see the module docstring).
    """

    def __init__(
        self,
        store: PostgresStore,
        conn: psycopg.Connection,
        *,
        lock: bool = False,
        optimistic: bool = False,
    ) -> None:
        self.store = store
        self.conn = conn
        self._lock_pending = lock  # the writer lock, sent before the first statement
        # Optimistic (see the module docstring): until the first write, reads go without the
        # lock, each kept here as a statement checking its rows' digest, sent after the lock.
        self._optimistic = lock and optimistic
        self._checks: list[tuple[str, list[Any]]] = []
        self.trashed: list[str] = []
        self.thinned: set[str] = set()  # packs that lost blobs but keep some (compaction)
        self.given_ids: set[str] = set()  # tables where rows kept given ids
        self._pending: dict[str, list[tuple]] = {"objects": [], "connections": []}
        self._ids: dict[str, deque[int]] = {"objects": deque(), "connections": deque()}
        self._block = {"objects": 16, "connections": 16}
        self._planned: dict[str, list[ObjectRow]] = {}  # repr(Selection) -> rows, see prefetch
        self._added: list[tuple[int, str, dict[str, Any]]] = []  # objects added since
        self._added_values: set[tuple[str, str, str, Any]] = set()  # their (class, key, kind, v)

    def _next_id(self, table: str) -> int:
        ids = self._ids[table]
        if not ids:
            # a sequence stands outside transactions: nothing to lock or to send ahead of it
            cur = self.conn.execute(*_reserve(table, self._block[table]))
            ids.extend(r[0] for r in cur.fetchall())
            # big queries reserve in big blocks
            self._block[table] = min(self._block[table] * 4, 4096)
        return ids.popleft()

    def _buffered(self) -> bool:
        return bool(self._pending["objects"] or self._pending["connections"])

    def _before(self) -> bool:
        """Anything to send ahead of the next statement (the lock, buffered rows)?"""
        return self._lock_pending or self._buffered()

    def _send_before(self) -> None:
        """Inside a pipeline: the writer lock if not taken yet (and, optimistic, the checks of
        what was read without it), then the buffered inserts."""
        if self._lock_pending:
            self._lock_pending = False
            if self._optimistic:
                self._optimistic = False
                # A new transaction: the reading one's table locks must not wait for the writer
                # lock with it (a RemoveIndex holding the lock waits for them to go). It wrote
                # nothing, so COMMIT ends it as ROLLBACK would; a ROLLBACK inside a pipeline
                # makes psycopg drop its prepared statements while statements already queued
                # behind it still name them ("prepared statement _pg3_7 does not exist", seen
                # in test_concurrent_if_not_found_adds_from_two_processes_create_exactly_one).
                self.conn.execute("COMMIT")
                self.conn.execute("BEGIN")
            self.conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", WRITER_LOCK)
            for sql, params in self._checks:
                self.conn.execute(sql, params)
            self._checks = []
        for table, rows in self._pending.items():
            if rows:
                self._pending[table] = []
                self.conn.execute(_INSERT[table], [list(col) for col in zip(*rows, strict=True)])

    @contextmanager
    def _pipeline(self) -> Iterator[None]:
        """A psycopg pipeline whose failed check (CHANGED) is a `WriteConflict`."""
        try:
            with self.conn.pipeline():
                yield
        except psycopg.Error as e:
            if e.sqlstate == CHANGED:
                raise WriteConflict(
                    "another query changed what this one read before it could commit; run it again"
                ) from None
            raise

    def _exec(self, sql: str, params: Sequence[Any] = ()) -> psycopg.Cursor:
        """A write (or a read that must see buffered rows, so sends them, under the lock)."""
        if self._before():
            with self._pipeline():  # what waits and this statement: one round trip
                self._send_before()
                cur = self.conn.execute(sql, params)
            return cur
        return self.conn.execute(sql, params)

    def confirm_reads(self) -> None:
        """Raise `WriteConflict` if what the reads made without the lock showed has changed.
        On the way out with an error only: a query failing on what it read (a `unique` Find
        finding two) must have read one state, like one that commits; and the bytes of a row
        it read being gone means a delete committed since, which the query, run again under
        the lock, sees whole instead of failing."""
        if self._optimistic and self._checks:
            self._pending = {"objects": [], "connections": []}  # rolled back anyway
            with self._pipeline():
                self._send_before()

    def _fetch(self, cur: psycopg.Cursor, sql: str, params: Sequence[Any]) -> list[tuple]:
        """The rows of a `_fingerprinted` read, its check kept for when the lock is taken."""
        rows = cur.fetchall()
        self._checks.append((_check_same(sql), [*params, rows[0][-1] if rows else None]))
        return [r[:-1] for r in rows]

    def commit(self, settle: str | None) -> None:
        """One round trip: the lock (if rows are to be written, or optimistic reads are to be
        checked), the buffered rows, later ids past given ones, the intent of the query's
        pack removed (`settle`), and COMMIT."""
        if not (self._buffered() or self.given_ids or len(self._checks) > 1):
            # Nothing to write: no need to wait for other writers. (Two reads or more made
            # without the lock are checked under it: together they must show one state.)
            self._lock_pending = False
        with self._pipeline():
            self._send_before()
            for table in sorted(self.given_ids):  # later ids go past the given ones
                seq = f"pg_get_serial_sequence('{table}', 'id')"
                self.conn.execute(
                    f"SELECT setval({seq}, greatest((SELECT max(id) FROM {table}), "
                    f"coalesce(pg_sequence_last_value({seq}::regclass), 1)))"
                )
            if settle is not None:  # raises if a sweeper took the intent (see SWEPT)
                self.conn.execute("SELECT lensdb_settle_intent(%s)", (settle,))
            self.conn.execute("COMMIT")

    def prefetch(self, selections: Sequence[Selection]) -> None:
        """Read these selections now, in one round trip (see the class docstring)."""
        # A query making n look-ups likely adds about n objects: their ids come in the same
        # round trip, and a first block of connection ids of that size (taken when needed).
        n = min(len(selections), 4096)
        planned: dict[str, list[ObjectRow]] = {}
        lookups = _Lookups()
        single = [(repr(sel), _find_sql(sel)) for sel in selections if not lookups.add(sel)]
        batched = list(lookups.statements())
        optimistic = self._optimistic
        wrap = _fingerprinted if optimistic else str
        with self._pipeline():
            if not optimistic:
                self._send_before()
            ids = None if self._ids["objects"] else self.conn.execute(*_reserve("objects", n))
            cursors = [self.conn.execute(wrap(sql), params) for _, (sql, params) in single]
            batches = [self.conn.execute(wrap(sql), params) for _, (sql, params) in batched]

        def rows(cur: psycopg.Cursor, sql: str, params: list[Any]) -> list[tuple]:
            return self._fetch(cur, sql, params) if optimistic else cur.fetchall()

        if ids is not None:
            self._ids["objects"].extend(r[0] for r in ids.fetchall())
        self._block["connections"] = max(self._block["connections"], n)
        for (key, statement), cur in zip(single, cursors, strict=True):
            planned[key] = [ObjectRow(i, c, p, b) for i, c, p, b in rows(cur, *statement)]
        for (keys, statement), cur in zip(batched, batches, strict=True):
            for key in keys:
                planned[key] = []
            for k, i, c, p, b in rows(cur, *statement):
                planned[keys[k - 1]].append(ObjectRow(i, c, p, b))
        self._planned = planned
        self._added = []
        self._added_values = set()

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """A read: optimistic, and with no buffered rows it must see, without the lock."""
        if self._optimistic and not self._buffered():
            return self._fetch(self.conn.execute(_fingerprinted(sql), params), sql, params)
        return self._exec(sql, params).fetchall()

    def _write_rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """A write that returns rows (under the lock, like every write)."""
        return self._exec(sql, params).fetchall()

    # objects -------------------------------------------------------------------------------
    def add_object(
        self, cls: str, props: dict[str, Any], blob: str | None = None, id: int | None = None
    ) -> int:
        if id is not None:
            self.given_ids.add("objects")
        else:
            id = self._next_id("objects")
        self._pending["objects"].append((id, cls, _json(props), blob))
        if self._planned:
            self._added.append((id, cls, props))
            for key, value in props.items():
                kind = _kind(value)
                if kind:
                    self._added_values.add((cls, key, kind, value))
        return id

    def _unchanged(self, sel: Selection) -> bool:
        """No object added since the prefetch can match `sel` (updates and deletes drop the
        prefetched rows). A look-up by one value checks a set, not every added row."""
        lookup = _lookup(sel)
        if lookup is not None:
            cls, key, kind, value, _ = lookup
            return (cls, key, kind, value) not in self._added_values
        return all(_excludes(sel, *row) for row in self._added)

    def find_objects(self, sel: Selection) -> list[ObjectRow]:
        if self._planned:
            # Planned from the command alone, so without `ids_only`: the rows read ahead serve
            # a Find that only binds a _ref as well (a ParallelLoader box batch's FindImage).
            key = repr(replace(sel, ids_only=False) if sel.ids_only else sel)
            rows = self._planned.get(key)
            if rows is not None and self._unchanged(sel):
                # asked again (two boxes of one image): a copy, callers may annotate rows
                return [ObjectRow(r.id, r.cls, dict(r.props), r.blob) for r in rows]
        if sel.ids_only:  # only ids and classes: a _ref bound for later commands
            params: list[Any] = []
            sql = "SELECT id, class FROM objects" + _where(sel, params) + _order_by(sel)
            sql += _limit(sel, params)
            return [ObjectRow(i, c, {}) for i, c in self._rows(sql, params)]
        return [ObjectRow(i, c, p, b) for i, c, p, b in self._rows(*_find_sql(sel))]

    def count_objects(self, sel: Selection) -> int:
        params: list[Any] = []
        return self._rows("SELECT count(*) FROM objects" + _where(sel, params), params)[0][0]

    def update_objects(
        self, ids: Sequence[int], set_props: dict[str, Any], remove_props: Sequence[str]
    ) -> None:
        self._planned.clear()
        self._update("objects", ids, set_props, remove_props)

    def _update(
        self, table: str, ids: Sequence[int], set_props: dict[str, Any], remove_props: Sequence[str]
    ) -> None:
        if not ids or not (set_props or remove_props):
            return
        self._exec(
            f"UPDATE {table} SET props = (props - %s::text[]) || %s WHERE id = ANY(%s)",
            (list(remove_props), _json(set_props), list(ids)),
        )

    def delete_objects(self, ids: Sequence[int]) -> None:
        if not ids:
            return
        self._planned.clear()
        ids = list(ids)
        packs = [
            r[0]
            for r in self._write_rows(
                "DELETE FROM objects WHERE id = ANY(%s) AND pack IS NOT NULL RETURNING pack", (ids,)
            )
        ]
        self._exec("DELETE FROM objects WHERE id = ANY(%s)", (ids,))
        self._exec("DELETE FROM connections WHERE src = ANY(%s) OR dst = ANY(%s)", (ids, ids))
        for pack in sorted(set(packs)):
            if self._rows("SELECT 1 FROM objects WHERE pack = %s LIMIT 1", (pack,)):
                self.thinned.add(pack)
            else:
                self.trash(pack)

    def trash(self, pack: str) -> None:
        """No row uses `pack` any more: remove it once no snapshot can see one that did."""
        self._exec("INSERT INTO blob_trash(pack) VALUES (%s) ON CONFLICT DO NOTHING", (pack,))
        self.trashed.append(pack)

    def pack_rows(self, pack: str) -> list[tuple[int, str]]:
        return self._rows("SELECT id, blob FROM objects WHERE pack = %s ORDER BY id", (pack,))

    def move_blob(self, object_id: int, old: str, new: str) -> bool:
        return bool(
            self._exec(
                "UPDATE objects SET blob = %s WHERE id = %s AND blob = %s", (new, object_id, old)
            ).rowcount
        )

    def pack_in_use(self, pack: str) -> bool:
        return bool(self._rows("SELECT 1 FROM objects WHERE pack = %s LIMIT 1", (pack,)))

    # the change log (base.ChangeLog) -------------------------------------------------------
    def log_changes(self, topic: int, added: Sequence[int], removed: Sequence[int]) -> int:
        # Inside the write transaction, so under the writer lock: numbers in commit order.
        last = 0
        for ids, gone in ((added, False), (removed, True)):
            if ids:
                last = self._write_rows(
                    "WITH logged AS (INSERT INTO changes(topic, object_id, removed) "
                    "SELECT %s, i, %s FROM unnest(%s::bigint[]) WITH ORDINALITY AS u(i, n) "
                    "ORDER BY n RETURNING seq) SELECT max(seq) FROM logged",
                    (topic, gone, list(ids)),
                )[0][0]
        return last

    def changes_since(self, topic: int, after: int) -> list[Change] | None:
        horizon = self._rows("SELECT seq FROM change_horizons WHERE topic = %s", (topic,))
        if horizon and horizon[0][0] > after:
            return None  # trimmed: entries after `after` may be gone
        return [
            Change(seq, oid, gone)
            for seq, oid, gone in self._rows(
                "SELECT seq, object_id, removed FROM changes WHERE topic = %s AND seq > %s "
                "ORDER BY seq",
                (topic, after),
            )
        ]

    def last_change(self, topic: int) -> int:
        return self._rows(
            "SELECT greatest((SELECT max(seq) FROM changes WHERE topic = %s), "
            "(SELECT seq FROM change_horizons WHERE topic = %s), 0)",
            (topic, topic),
        )[0][0]

    def drop_changes(self, topic: int) -> None:
        self._exec("DELETE FROM changes WHERE topic = %s", (topic,))
        self._exec("DELETE FROM change_horizons WHERE topic = %s", (topic,))

    # connections ---------------------------------------------------------------------------
    def add_connection(
        self, cls: str, src: int, dst: int, props: dict[str, Any], id: int | None = None
    ) -> int:
        if id is not None:
            self.given_ids.add("connections")
        else:
            id = self._next_id("connections")
        self._pending["connections"].append((id, cls, src, dst, _json(props)))
        return id

    def _connection_where(
        self,
        sel: Selection,
        src: Sequence[int] | None,
        dst: Sequence[int] | None,
        params: list[Any],
    ) -> str:
        extra = []
        for col, ends in (("src", src), ("dst", dst)):
            if ends is not None:
                extra.append(f"{col} = ANY(%s)" if ends else "false")
                if ends:
                    params.append(list(ends))
        return _where(sel, params, extra)

    def find_connections(
        self, sel: Selection, src: Sequence[int] | None = None, dst: Sequence[int] | None = None
    ) -> list[ConnectionRow]:
        params: list[Any] = []
        where = self._connection_where(sel, src, dst, params)
        sql = (
            "SELECT id, class, src, dst, props, (SELECT o.class FROM objects o WHERE o.id = src),"
            " (SELECT o.class FROM objects o WHERE o.id = dst) FROM connections"
            + where
            + _order_by(sel)
            + _limit(sel, params)
        )
        return [
            ConnectionRow(i, c, s, d, p, sc or "", dc or "")
            for i, c, s, d, p, sc, dc in self._rows(sql, params)
        ]

    def count_connections(
        self, sel: Selection, src: Sequence[int] | None = None, dst: Sequence[int] | None = None
    ) -> int:
        params: list[Any] = []
        sql = "SELECT count(*) FROM connections" + self._connection_where(sel, src, dst, params)
        return self._rows(sql, params)[0][0]

    def neighbors(
        self, ref_ids: Sequence[int], direction: str, cls: str | None, where: Predicate | None
    ) -> list[tuple[int, int]]:
        pairs: list[tuple[int, int]] = []
        ends = {
            "out": [("src", "dst")],
            "in": [("dst", "src")],
            "any": [("src", "dst"), ("dst", "src")],
        }[direction]
        for near, far in ends:
            params: list[Any] = [list(ref_ids)]
            clauses = [f"{near} = ANY(%s)"]
            if cls is not None:
                clauses.append("class = %s")
                params.append(cls)
            if where is not None:
                c = _Compiler()
                clauses.append(c.compile(where))
                params.extend(c.params)
            sql = f"SELECT {near}, {far} FROM connections WHERE {' AND '.join(clauses)} ORDER BY id"
            pairs.extend(self._rows(sql, params))
        return pairs

    def update_connections(
        self, ids: Sequence[int], set_props: dict[str, Any], remove_props: Sequence[str]
    ) -> None:
        self._update("connections", ids, set_props, remove_props)

    def delete_connections(self, ids: Sequence[int]) -> None:
        if ids:
            self._exec("DELETE FROM connections WHERE id = ANY(%s)", (list(ids),))

    # indexes and schema --------------------------------------------------------------------
    def create_index(self, kind: str, cls: str, key: str) -> bool:
        if (kind, cls, key) in self.indexes():
            return False
        table = "objects" if kind == "entity" else "connections"
        for member, expr in _INDEX_EXPRS.items():
            name = _index_name(kind, cls, key, member)
            self._exec(f"CREATE INDEX IF NOT EXISTS {name} ON {table} (class, {expr(key)})", [])
        self._exec(
            "INSERT INTO property_indexes(kind, class, key, name) VALUES (%s, %s, %s, %s)",
            (kind, cls, key, _index_name(kind, cls, key, "")),
        )
        return True

    def remove_index(self, kind: str, cls: str, key: str) -> bool:
        if (kind, cls, key) not in self.indexes():
            return False
        for member in _INDEX_EXPRS:
            self._exec(f"DROP INDEX IF EXISTS {_index_name(kind, cls, key, member)}")
        self._exec(
            "DELETE FROM property_indexes WHERE kind = %s AND class = %s AND key = %s",
            (kind, cls, key),
        )
        return True

    def indexes(self) -> set[tuple[str, str, str]]:
        return {tuple(r) for r in self._rows("SELECT kind, class, key FROM property_indexes")}  # type: ignore[misc]

    def schema(self, kind: str) -> dict[str, ClassStats]:
        table = "objects" if kind == "entity" else "connections"
        out: dict[str, ClassStats] = {}
        for cls, n in self._rows(f"SELECT class, count(*) FROM {table} GROUP BY class"):
            out[cls] = ClassStats(n, {})
        type_sql = (
            "CASE jsonb_typeof(j.value) WHEN 'number' THEN 'Number' "
            "WHEN 'string' THEN 'String' WHEN 'boolean' THEN 'Boolean' "
            "WHEN 'object' THEN CASE WHEN j.value ? '_date' THEN 'DateTime' "
            "ELSE 'JSON' END ELSE 'JSON' END"
        )
        rows = self._rows(
            f"SELECT t.class, j.key, {type_sql} AS ty, count(*) FROM {table} t, "
            "jsonb_each(t.props) j WHERE left(j.key, 1) <> '_' GROUP BY 1, 2, 3 ORDER BY 4"
        )
        for cls, key, ty, n in rows:
            props = out[cls].properties
            total = n + (props[key][0] if key in props else 0)
            props[key] = (total, ty)  # the most common type wins (rows come in ascending count)
        if kind == "connection":
            ends = self._rows(
                "SELECT c.class, s.class, d.class, count(*) FROM connections c "
                "JOIN objects s ON s.id = c.src JOIN objects d ON d.id = c.dst "
                "GROUP BY 1, 2, 3"
            )
            for cls, s, d, n in ends:
                out[cls].ends[(s, d)] = n
        return out


class PgStaged:
    """A pack uploaded ahead of the transaction that references it, under an intent row."""

    def __init__(self, store: PostgresStore, pack: str | None, keys: list[str]) -> None:
        self.store = store
        self.pack = pack
        self.keys = keys
        self.in_doubt = False  # the commit's outcome is unknown: rows may use the pack

    def finish(self, used: Any) -> None:
        """After commit (which removed the intent row): drop the pack if no row took a blob,
        compact it if rows took less than half of its bytes."""
        if self.pack is None:
            return
        taken = [k for k in self.keys if k in used]
        if not taken:
            self.store.blobs.delete([self.pack])
        elif is_thin(taken, sum(map(length_of, self.keys))):
            self.store.compact({self.pack})

    def abort(self) -> None:
        if self.pack is None or self.in_doubt:
            return
        try:
            self.store.blobs.delete([self.pack])
            self.store._autocommit("DELETE FROM blob_intents WHERE pack = %s", (self.pack,))
        except Exception as e:  # the sweeper removes it once this process is gone
            log.warning("could not remove the pack %s of a failed query now: %s", self.pack, e)


class PostgresStore:
    """Rows in PostgreSQL (psycopg 3 with its connection pool), packs in a `BlobBackend`."""

    ids_in_commit_order = False  # each server takes ids from the sequence in blocks
    local_lookups = False

    def __init__(
        self, url: str, blobs: BlobBackend, *, pool_size: int = 16, timeout: float = 10.0
    ) -> None:
        self.url = url
        self.blobs = blobs
        self.timeout = timeout
        probe(url, timeout)
        # No check on checkout (it would cost a round trip per query): a connection that died
        # with its server fails its BEGIN, is dropped, and the transaction starts on another.
        self.pool = ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            timeout=timeout,
            kwargs={"autocommit": True},
            open=True,
            name="lensdb",
        )
        self.owner = random.getrandbits(31)
        # A session lock that lives as long as this store: its intents are not a dead writer's.
        self._owner_conn = psycopg.connect(url, autocommit=True, connect_timeout=int(timeout))
        self._owner_conn.execute("SELECT pg_advisory_lock(%s, %s)", (_OWNER_NS, self.owner))
        self._owner_lock = threading.Lock()
        self._readers = ThreadPoolExecutor(16, thread_name_prefix="lensdb-blob-read")
        self._pack_sizes: dict[str, int] = {}  # see blob_url
        self._closed = False
        self._migrate()
        self.sweep()
        self._swept = time.monotonic()

    # plumbing --------------------------------------------------------------------------------
    @contextmanager
    def _conn(self) -> Iterator[psycopg.Connection]:
        try:
            with self.pool.connection() as conn:
                yield conn
        except psycopg.OperationalError as e:
            raise StoreError(
                f"PostgreSQL at {redact(self.url)} is unreachable or failed: {_first_line(e)}"
            ) from e
        except psycopg.DataError as e:  # a value PostgreSQL cannot hold (a NUL in a string)
            raise StoreError(f"PostgreSQL refused a value: {_first_line(e)}") from e

    @contextmanager
    def _first(
        self, sql: str, params: Sequence[Any] = ()
    ) -> Iterator[tuple[psycopg.Connection, psycopg.Cursor]]:
        """A pooled connection with `sql` run on it as its first statement. A PostgreSQL restart
        kills every idle connection in the pool; each fails its first statement before
        anything ran on it. The first such failure has the pool check all its idle connections
        (one round trip each, dropping the dead ones) and the statement goes again, so the
        first queries after a restart are not refused however many connections sat idle."""
        try:
            for attempt in range(self.pool.max_size + 1):
                conn = self.pool.getconn()
                try:
                    cur = conn.execute(sql, params)
                    break
                except psycopg.OperationalError:
                    broken = conn.broken
                    self.pool.putconn(conn)  # broken: the pool closes it
                    if not broken or attempt == self.pool.max_size:
                        raise
                    if attempt == 0:
                        self.pool.check()
            try:
                yield conn, cur
            finally:
                self.pool.putconn(conn)
        except psycopg.OperationalError as e:
            raise StoreError(
                f"PostgreSQL at {redact(self.url)} is unreachable or failed: {_first_line(e)}"
            ) from e
        except psycopg.DataError as e:  # a value PostgreSQL cannot hold (a NUL in a string)
            raise StoreError(f"PostgreSQL refused a value: {_first_line(e)}") from e

    @contextmanager
    def _begin(self, begin: str) -> Iterator[psycopg.Connection]:
        """A pooled connection inside a transaction opened with `begin` (see `_first`)."""
        with self._first(begin) as (conn, _):
            yield conn

    def _autocommit(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """One statement on a pooled connection (see `_first`)."""
        with self._first(sql, params) as (_, cur):
            return cur.fetchall() if cur.description else []

    def _migrate(self) -> None:
        with self._conn() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (_NS, _MIGRATE))
            conn.execute(
                "CREATE TABLE IF NOT EXISTS lensdb_schema (version integer PRIMARY KEY,"
                " applied timestamptz NOT NULL DEFAULT now())"
            )
            have = conn.execute("SELECT coalesce(max(version), 0) FROM lensdb_schema").fetchone()[0]
            if have > SCHEMA_VERSION:
                raise ConfigError(
                    f"the database {redact(self.url)} has lensdb schema version "
                    f"{have}, newer than this lensdb knows ({SCHEMA_VERSION}): "
                    "upgrade lensdb"
                )
            for version, sql in MIGRATIONS:
                if version > have:
                    conn.execute(sql)
                    conn.execute("INSERT INTO lensdb_schema(version) VALUES (%s)", (version,))
                    log.info("PostgreSQL schema migrated to version %d", version)

    def schema_version(self) -> int:
        return self._autocommit("SELECT max(version) FROM lensdb_schema")[0][0]

    # transactions ----------------------------------------------------------------------------
    @contextmanager
    def read(self, snapshot: bool = True, blobs: bool = True) -> Iterator[PostgresTxn]:
        # snapshot=False still reads in one transaction: READ COMMITTED, each statement sees
        # the latest commit.
        level = "REPEATABLE READ" if snapshot else "READ COMMITTED"
        with self._begin(f"BEGIN ISOLATION LEVEL {level} READ ONLY") as conn:
            try:
                yield PostgresTxn(self, conn)
            finally:
                if not conn.broken:
                    conn.execute("ROLLBACK")

    @contextmanager
    def write(
        self, staged: PgStaged | None = None, *, optimistic: bool = False
    ) -> Iterator[PostgresTxn]:
        if self._closed:
            raise RuntimeError("the database is closed")
        with self._begin("BEGIN") as conn, _unprepared(conn):
            try:
                txn = PostgresTxn(self, conn, lock=True, optimistic=optimistic)
                yield txn
                try:
                    txn.commit(staged.pack if staged is not None else None)
                except psycopg.Error as e:
                    if e.sqlstate == SWEPT:
                        raise StoreError(
                            "this query's uploaded blobs were swept as abandoned "
                            "(the server lost its database session); retry"
                        ) from None
                    if isinstance(e, psycopg.OperationalError):
                        # The connection died with COMMIT sent: PostgreSQL may have committed.
                        # Keep the bytes (abort leaves them; the intent row, if it is still
                        # there, gets them swept once this writer is gone).
                        if staged is not None:
                            staged.in_doubt = True
                        raise StoreError(
                            f"PostgreSQL at {redact(self.url)} failed while committing "
                            f"({_first_line(e)}): the query may or may not have taken effect; "
                            "look before retrying one without if_not_found"
                        ) from e
                    raise
            except BaseException as e:
                if isinstance(e, BlobMissing) or (
                    isinstance(e, Exception) and not isinstance(e, psycopg.Error | StoreError)
                ):
                    try:  # the query failed on what it read: was it one state, still there?
                        txn.confirm_reads()
                    except WriteConflict as conflict:
                        if not conn.broken:
                            conn.execute("ROLLBACK")
                        raise conflict from e
                    except psycopg.Error:
                        pass  # the query's own error stands
                if not conn.broken:
                    conn.execute("ROLLBACK")
                raise
        if txn.trashed:
            self.sweep_trash()
        if txn.thinned:
            self.compact(txn.thinned.difference(txn.trashed))
        now = time.monotonic()
        if now - self._swept > SWEEP_EVERY:  # another server's crash, or trash readers kept
            self._swept = now
            try:
                self.sweep()
                self.trim_changes()
            except StoreError as e:  # the query committed; sweeping is tried again later
                log.warning("sweeping abandoned and deleted packs failed: %s", e)

    def stage_blobs(self, blobs: list[bytes]) -> PgStaged:
        if not blobs:
            return PgStaged(self, None, [])
        pack = new_name()
        keys = []
        offset = 0
        for data in blobs:
            keys.append(f"{pack}.{offset}.{len(data)}")
            offset += len(data)
        owner = self.owner
        if not self._intend(pack, owner):
            self._renew_owner(owner)
            if not self._intend(pack, self.owner):
                raise StoreError(
                    f"PostgreSQL at {redact(self.url)} did not keep this server's session "
                    "lock; retry"
                )
        staged = PgStaged(self, pack, keys)
        try:
            self.blobs.put(pack, blobs)
        except Exception as e:
            staged.abort()
            if isinstance(e, StoreError):
                raise
            raise StoreError(
                f"could not store the blobs in {self.blobs.describe()}: {_first_line(e)}"
            ) from e
        return staged

    def compact(self, packs: set[str]) -> int:
        """Rewrite thinned packs (`compaction.py`: the folder store's policy, so deleted bytes
        do not stay in object storage for good). Returns how many were rewritten."""
        return compact(self, packs)

    def pack_size(self, pack: str) -> int:
        return self.blobs.size(pack)

    def _intend(self, pack: str, owner: int) -> bool:
        """Record the intent to upload `pack`, only while `owner`'s session lock is held: after
        a PostgreSQL restart the session that held it is gone, and a sweeper would take this
        server's uploads for a dead one's. False then (nothing recorded)."""
        return bool(
            self._autocommit(
                "INSERT INTO blob_intents(pack, owner) SELECT %s, %s WHERE EXISTS (SELECT 1 "
                "FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = %s "
                "AND objid = %s AND objsubid = 2 AND database = (SELECT oid FROM pg_database "
                "WHERE datname = current_database())) RETURNING 1",
                (pack, owner, _OWNER_NS, owner),
            )
        )

    def _renew_owner(self, lost: int) -> None:
        """A new session lock under a new owner number (the old one's intents are a dead
        writer's now: swept, and a query still holding one fails its commit asking for a
        retry)."""
        with self._owner_lock:
            if self.owner != lost:
                return  # another thread renewed it already
            try:
                self._owner_conn.close()
            except psycopg.Error:
                pass
            try:
                conn = psycopg.connect(
                    self.url, autocommit=True, connect_timeout=max(1, int(self.timeout))
                )
                owner = random.getrandbits(31)
                conn.execute("SELECT pg_advisory_lock(%s, %s)", (_OWNER_NS, owner))
            except psycopg.Error as e:
                raise StoreError(
                    f"PostgreSQL at {redact(self.url)} is unreachable or failed: {_first_line(e)}"
                ) from e
            self._owner_conn, self.owner = conn, owner
        log.warning("the PostgreSQL session holding this server's lock was lost; took a new one")

    # blobs -------------------------------------------------------------------------------------
    def get_blob(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        pack, start, size = place(key)
        if size is None:
            raise BlobMissing(key)
        offset = min(max(offset, 0), size)
        want = size - offset if length is None else max(0, min(length, size - offset))
        if want == 0:
            return b""
        return self.blobs.read_pack(pack, start + offset, want)

    def get_blobs(self, keys: Sequence[str]) -> list[bytes]:
        """Whole blobs, fetched in parallel: from object storage each is a GET whose latency,
        not bandwidth, is what a Find returning many blobs waits on."""
        if len(keys) <= 1:
            return [self.get_blob(k) for k in keys]
        return list(self._readers.map(self.get_blob, keys))

    def blob_size(self, key: str) -> int:
        return length_of(key)

    def blob_key(self, cls: str, object_id: int) -> str | None:
        rows = self._autocommit(
            "SELECT blob FROM objects WHERE id = %s AND class = %s", (object_id, cls)
        )
        return rows[0][0] if rows else None

    def locate_blob(self, key: str) -> FileRange | None:
        return self.blobs.locate(key)

    def blob_url(self, key: str, seconds: int, content_type: str | None) -> str | None:
        """A presigned URL when the blob is its pack's whole object (a query that added one blob,
        as most single-image and video adds are); None for a blob sharing its pack. A pack's
        size is asked once (a HEAD) and kept: packs are written once and never changed."""
        pack, start, size = place(key)
        if start != 0 or size is None:
            return None
        whole = self._pack_sizes.get(pack)
        if whole is None:
            whole = self.blobs.size(pack)
            if len(self._pack_sizes) >= _PACK_SIZES_KEPT:
                self._pack_sizes.clear()
            self._pack_sizes[pack] = whole
        if whole != size:
            return None
        return self.blobs.url(pack, seconds, content_type)

    def trim_changes(self, keep: float = KEEP_CHANGES_FOR) -> int:
        """Remove change-log entries older than `keep` seconds, raising each topic's horizon to
        the highest number removed, in one transaction: a snapshot shows both or neither, so a
        server that has not applied an entry the trim removed always knows it (changes_since
        answers None). Returns how many entries went."""
        rows = self._autocommit(
            "WITH gone AS (DELETE FROM changes WHERE at < now() - %s * interval '1 second' "
            "RETURNING topic, seq), raised AS (INSERT INTO change_horizons(topic, seq) "
            "SELECT topic, max(seq) FROM gone GROUP BY topic ON CONFLICT (topic) DO UPDATE "
            "SET seq = greatest(change_horizons.seq, excluded.seq)) SELECT count(*) FROM gone",
            (keep,),
        )
        return rows[0][0]

    def sweep(self) -> tuple[int, int]:
        """Remove packs of writers that died before committing, and deleted packs no running
        read can still need. Returns (abandoned packs removed, deleted packs removed)."""
        return self.sweep_intents(), self.sweep_trash()

    def sweep_intents(self) -> int:
        removed = 0
        owners = [r[0] for r in self._autocommit("SELECT DISTINCT owner FROM blob_intents")]
        for owner in owners:
            with self._conn() as conn:
                if not conn.execute(
                    "SELECT pg_try_advisory_lock(%s, %s)", (_OWNER_NS, owner)
                ).fetchone()[0]:
                    continue  # its process is alive (this one included: another session)
                try:
                    with conn.transaction():
                        packs = [
                            r[0]
                            for r in conn.execute(
                                "DELETE FROM blob_intents WHERE owner = %s RETURNING pack", (owner,)
                            )
                        ]
                        used = {
                            r[0]
                            for r in conn.execute(
                                "SELECT DISTINCT pack FROM objects WHERE pack = ANY(%s)", (packs,)
                            )
                        }
                        orphans = [p for p in packs if p not in used]
                        self.blobs.delete(orphans)
                        removed += len(orphans)
                finally:
                    conn.execute("SELECT pg_advisory_unlock(%s, %s)", (_OWNER_NS, owner))
        if removed:
            log.info("removed %d pack(s) uploaded by queries that never committed", removed)
        return removed

    def sweep_trash(self) -> int:
        # A pack deleted by transaction X may go once X is older than the snapshot of every
        # open transaction: then none of them can see a row that points into it.
        ready = [
            r[0]
            for r in self._autocommit(
                "SELECT pack FROM blob_trash WHERE age(xid(xid)) > (SELECT coalesce(max(age("
                "backend_xmin)), -1) FROM pg_stat_activity WHERE backend_xmin IS NOT NULL AND "
                "pid <> pg_backend_pid())"
            )
        ]
        if ready:
            self.blobs.delete(ready)
            self._autocommit("DELETE FROM blob_trash WHERE pack = ANY(%s)", (ready,))
        return len(ready)

    def check(self, repair: bool = False) -> BlobCheck:
        stored = self.blobs.list_packs()
        with self.read() as txn:
            staged = {r[0] for r in txn._rows("SELECT pack FROM blob_intents")}
            retired = {r[0] for r in txn._rows("SELECT pack FROM blob_trash")}
            keys = (k for (k,) in txn._rows("SELECT blob FROM objects WHERE blob IS NOT NULL"))
            report = compare_packs(stored, keys, staged | retired)
        if repair and report.orphans:
            self.blobs.delete(report.orphans)
            log.info("check: removed %d pack(s) that no row uses", len(report.orphans))
        return report

    def plan_for(self, sel: Selection, *, force_index: bool = False) -> list[str]:
        """EXPLAIN lines of a Find's statement (tests, diagnostics). force_index asks whether
        the planner *can* use an index for the predicate, which a table too small to make an
        index scan cheaper cannot show otherwise."""
        params: list[Any] = []
        sql = "SELECT id FROM objects" + _where(sel, params) + _order_by(sel) + _limit(sel, params)
        with self._conn() as conn, conn.transaction():
            if force_index:
                conn.execute("SET LOCAL enable_seqscan = off")
            return [r[0] for r in conn.execute("EXPLAIN " + sql, params)]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.pool.close()
        self._readers.shutdown()
        with self._owner_lock:
            self._owner_conn.close()
        self.blobs.close()


def _first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]


def probe(url: str, timeout: float = 10.0) -> None:
    """Connect once, so that a wrong URL or password is one line saying what to fix."""
    try:
        psycopg.connect(url, connect_timeout=max(1, int(timeout)), autocommit=True).close()
    except psycopg.Error as e:
        why = _first_line(e)
        hint = "check the host, port, user, password and database name in --data"
        if "password" in why or "authentication" in why:
            hint = "check the user and password in --data (postgresql://USER:PASSWORD@HOST/DB)"
        elif "does not exist" in why:
            hint = "create the database first (createdb) or fix its name in --data"
        elif "refused" in why or "timeout" in why or "resolve" in why:
            hint = "is PostgreSQL running there? check the host and port in --data"
        raise ConfigError(f"cannot open PostgreSQL {redact(url)}: {why} ({hint})") from None
