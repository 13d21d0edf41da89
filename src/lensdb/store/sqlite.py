"""The embedded backend: SQLite (WAL) for objects, connections and indexes; a blob folder.

Every object (entity, image, box, polygon, blob) is a row of `objects` with its class and a
JSON document of properties; system properties (`_label`, `_x`, ...) live in the same document
under reserved names. Constraints compile to SQL over `json_extract(props, '$."key"')`, and
CreateIndex builds an expression index on `(class, json_extract(...))` that the planner uses.
One writer connection serialises write transactions; each thread reads on its own connection.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lensdb.errors import write_refusal_cause
from lensdb.store.base import (
    ID_OPS,
    AllOf,
    AnyOf,
    BlobCheck,
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
    Txn,
    WriteRefused,
)
from lensdb.store.blobfiles import BlobFolder, StagedBlobs, compare_packs, pack_of
from lensdb.store.compaction import compact
from lensdb.store.reclaim import Reclaimer

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    class TEXT NOT NULL,
    props TEXT NOT NULL DEFAULT '{}',
    blob TEXT
);
CREATE INDEX IF NOT EXISTS objects_by_class ON objects(class);
CREATE INDEX IF NOT EXISTS objects_by_blob ON objects(blob) WHERE blob IS NOT NULL;
CREATE TABLE IF NOT EXISTS connections (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    class TEXT NOT NULL,
    src INTEGER NOT NULL,
    dst INTEGER NOT NULL,
    props TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS connections_by_src ON connections(src, class);
CREATE INDEX IF NOT EXISTS connections_by_dst ON connections(dst, class);
CREATE INDEX IF NOT EXISTS connections_by_class ON connections(class);
CREATE TABLE IF NOT EXISTS property_indexes (
    kind TEXT NOT NULL, class TEXT NOT NULL, key TEXT NOT NULL, name TEXT NOT NULL,
    PRIMARY KEY (kind, class, key)
);
CREATE TABLE IF NOT EXISTS blob_trash (key TEXT PRIMARY KEY);
"""

_NUMERIC = "('integer','real')"
# One encoder for every row: json.dumps with options builds a new encoder per call.
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_MANY = 64  # above this many values, bind one JSON array instead of one parameter each


def _path(key: str, member: str = "") -> str:
    """A SQL literal JSON path for a property key (keys are validated to hold no quotes)."""
    safe = key.replace("'", "''")
    return f"'$.\"{safe}\"{member}'"


def _in_list(expr: str, values: Sequence[Any], params: list[Any]) -> str:
    if len(values) > _MANY:
        params.append(json.dumps(list(values)))
        return f"{expr} IN (SELECT value FROM json_each(?))"
    params.extend(values)
    return f"{expr} IN ({','.join('?' * len(values))})"


class _Compiler:
    """Predicate tree → SQL text and parameters, for a table with `id` and `props` columns."""

    def __init__(self) -> None:
        self.params: list[Any] = []

    def compile(self, pred: Predicate) -> str:
        if isinstance(pred, AllOf):
            return (
                "(" + " AND ".join(self.compile(p) for p in pred.parts) + ")" if pred.parts else "1"
            )
        if isinstance(pred, AnyOf):
            return (
                "(" + " OR ".join(self.compile(p) for p in pred.parts) + ")" if pred.parts else "0"
            )
        if isinstance(pred, Not):
            return f"NOT coalesce({self.compile(pred.part)}, 0)"
        if isinstance(pred, ClassIn):
            sql = _in_list("class", list(pred.classes), self.params) if pred.classes else "0"
            return f"NOT ({sql})" if pred.negate else sql
        if isinstance(pred, IdCompare):
            self.params.append(pred.id)
            return f"id {ID_OPS[pred.op]} ?"
        if isinstance(pred, IdIn):
            sql = _in_list("id", pred.ids, self.params) if pred.ids else "0"
            return f"NOT ({sql})" if pred.negate else sql
        if isinstance(pred, Compare):
            if pred.op == "!=" and pred.value is not None:
                return f"NOT coalesce({self._compare(pred.key, '=', pred.value)}, 0)"
            return self._compare(pred.key, "=" if pred.op == "==" else pred.op, pred.value)
        if isinstance(pred, OneOf):
            sql = self._one_of(pred.key, pred.values)
            return f"NOT coalesce({sql}, 0)" if pred.negate else sql
        raise TypeError(f"unknown predicate {pred!r}")

    def _compare(self, key: str, op: str, value: Any) -> str:
        p = _path(key)
        if value is None:
            return f"json_type(props, {p}) IS {'NOT ' if op == '!=' else ''}NULL"
        if isinstance(value, bool):
            # Only equality is meaningful on booleans; the engine rejects the rest.
            return f"json_type(props, {p}) = '{'true' if value else 'false'}'"
        if isinstance(value, DateValue):
            self.params.append(value.ts)
            return f"json_extract(props, {_path(key, '._ts')}) {op} ?"
        self.params.append(value)
        kind = "= 'text'" if isinstance(value, str) else f"IN {_NUMERIC}"
        return f"(json_extract(props, {p}) {op} ? AND json_type(props, {p}) {kind})"

    def _one_of(self, key: str, values: Sequence[Any]) -> str:
        p = _path(key)
        nums = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
        strs = [v for v in values if isinstance(v, str)]
        dates = [v.ts for v in values if isinstance(v, DateValue)]
        bools = {("true" if v else "false") for v in values if isinstance(v, bool)}
        parts = []
        if nums:
            parts.append(
                f"({_in_list(f'json_extract(props, {p})', nums, self.params)}"
                f" AND json_type(props, {p}) IN {_NUMERIC})"
            )
        if strs:
            parts.append(
                f"({_in_list(f'json_extract(props, {p})', strs, self.params)}"
                f" AND json_type(props, {p}) = 'text')"
            )
        if dates:
            parts.append(_in_list(f"json_extract(props, {_path(key, '._ts')})", dates, self.params))
        if bools:
            parts.append(f"json_type(props, {p}) IN ({','.join(repr(b) for b in sorted(bools))})")
        if any(v is None for v in values):
            parts.append(f"json_type(props, {p}) IS NULL")
        return "(" + " OR ".join(parts) + ")" if parts else "0"


def _looks_up_values(where: Predicate | None) -> bool:
    """Whether `where` restricts a property to a list of values (`in`), alone or in an AND."""
    if isinstance(where, OneOf):
        return not where.negate
    return isinstance(where, AllOf) and any(_looks_up_values(p) for p in where.parts)


def _order_by(sel: Selection) -> str:
    # With an `in` list, the id order is sorted after the fact (`+id`): ordering by the bare
    # column made SQLite, which has no statistics, walk the whole class in id order to skip a
    # sort instead of probing the property's index once per value. The COCO importer's 50
    # checks of 100 guids while adding 5,000 images took 0.26 s instead of 0.04 s (14% of the
    # import's samples, bench/formats_import.py), and each grows with the database.
    id_col = "+id" if _looks_up_values(sel.where) else "id"
    terms = []
    for s in sel.sort:
        direction = "DESC" if s.descending else "ASC"
        if s.key == "_uniqueid":
            terms.append(f"{id_col} {direction}")
        else:
            p = _path(s.key)
            terms.append(
                f"coalesce(json_extract(props, {_path(s.key, '._ts')}), "
                f"json_extract(props, {p})) {direction}"
            )
    terms.append(f"{id_col} ASC")  # stable order for paging
    return " ORDER BY " + ", ".join(terms)


def _where(sel: Selection, params: list[Any], extra: list[str] | None = None) -> str:
    clauses = list(extra or [])
    if sel.classes is not None:
        if len(sel.classes) == 1:
            clauses.append("class = ?")
            params.append(sel.classes[0])
        else:
            clauses.append(_in_list("class", list(sel.classes), params) if sel.classes else "0")
    if sel.ids is not None:
        clauses.append(_in_list("id", list(sel.ids), params) if sel.ids else "0")
    if sel.where is not None:
        c = _Compiler()
        clauses.append(c.compile(sel.where))
        params.extend(c.params)
    return (" WHERE " + " AND ".join(clauses)) if clauses else ""


def _limit(sel: Selection, params: list[Any]) -> str:
    if sel.limit is None and not sel.offset:
        return ""
    params.extend([-1 if sel.limit is None else sel.limit, sel.offset])
    return " LIMIT ? OFFSET ?"


def _index_name(kind: str, cls: str, key: str, member: str) -> str:
    digest = hashlib.sha1(f"{kind}\0{cls}\0{key}\0{member}".encode()).hexdigest()[:16]
    return f"pix_{digest}"


def _pack_in_use(conn: sqlite3.Connection, pack: str) -> bool:
    """Whether any row keeps a blob in this pack: a range scan of the blob index, since every
    such key is `<pack>.<offset>.<length>` or, from before packs, `<pack>` alone (pack names all
    have 32 characters, and "/" sorts right after ".")."""
    return (
        conn.execute(
            "SELECT 1 FROM objects WHERE blob >= ? AND blob < ? LIMIT 1", (pack, pack + "/")
        ).fetchone()
        is not None
    )


def sqlite_refusal(error: sqlite3.Error, folder: Path) -> StoreError | None:
    """The clear error for a write SQLite could not do, or None for any other failure."""
    cause = write_refusal_cause(folder, sqlite_code=getattr(error, "sqlite_errorcode", None))
    return WriteRefused(cause) if cause else None


def rollback(conn: sqlite3.Connection) -> None:
    """Roll back if a transaction is still open. SQLite ends a transaction by itself after
    some errors (SQLITE_FULL, SQLITE_IOERR), and a ROLLBACK then fails with "no transaction
    is active", which would replace the error that says what went wrong."""
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error as e:  # the original error matters more; the connection resets
            log.warning("rollback failed: %s", e)


# Page cache: one budget for the whole process, shared by the writer and every reader thread.
# At 64 MiB per connection, a server's ~33 connections (a reader per worker thread) were allowed
# about 2 GB of cache. Reads go through mmap (the OS page cache, shared by all connections), so
# a reader's own cache only holds WAL pages and pages being changed; the writer gets a quarter.
# Measured with bench/load.py (64 SDK clients x 60 s, 24 GB machine: a 256 MiB budget): the
# server's anonymous memory went from 53 to 72 MiB after warm-up; bench/soak.py (8 minutes):
# at most 126 MiB.
def cache_budget_bytes() -> int:
    """1/32 of the machine's memory, between 16 MiB and 256 MiB."""
    try:
        ram = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        ram = 4 << 30
    return max(16 << 20, min(256 << 20, ram // 32))


_CACHE_BUDGET = cache_budget_bytes()
_WRITER_CACHE_KIB = _CACHE_BUDGET // 4 // 1024
_READER_CACHE_KIB = max(2048, _CACHE_BUDGET // 32 // 1024)


_scan = json.JSONDecoder().scan_once


def _loads(text: str) -> dict[str, Any]:
    """A row's property document. json.loads's own C scanner, called directly: the documents
    are compact JSON this module (or SQLite's json_set) wrote, and json.loads's Python wrapper
    around the scanner (whitespace matches, checks) cost more than the scan: 1.9 against 0.3 us
    for a descriptor's 45-byte document (timeit), 11 us of the 26 us it took to read a k-NN
    answer's 10 rows. Anything else (never written here) goes through json.loads."""
    if text == "{}":
        return {}
    try:
        value, end = _scan(text, 0)
    except (StopIteration, ValueError):
        return json.loads(text)
    return value if end == len(text) else json.loads(text)


_INSERT = {
    "objects": "INSERT INTO objects(id, class, props, blob) VALUES (?, ?, ?, ?)",
    "connections": "INSERT INTO connections(id, class, src, dst, props) VALUES (?, ?, ?, ?, ?)",
}


class SQLiteTxn(Txn):
    """One transaction on one connection.

    New rows wait in a buffer and go to SQLite as one `executemany` per table, before the next
    statement of the transaction (so reads see them) or before COMMIT: the PostgreSQL store's
    look-ahead, without its round trips. Their ids are taken here, from the table's
    AUTOINCREMENT counter read once per transaction, which is safe because a write
    transaction holds the only writer. The ids are those SQLite would have given.
    Measured on the add path alone (46,000 objects and 77,000 connections in 50
    transactions, a COCO import's rows): 0.53 s of CPU one statement per row, 0.47 s so;
    most of what is left is SQLite's own B-tree and index work (a multi-row INSERT from one
    JSON array saved no more on connections).
    The connection is private (`_conn`): every statement of the transaction goes through
    `_exec`, which sends the buffered rows first, so no statement can miss them.
    """

    def __init__(self, store: SQLiteStore, conn: sqlite3.Connection, writable: bool) -> None:
        self.store = store
        self._conn = conn
        self.writable = writable
        self.trashed: list[str] = []  # packs no row points into any more
        self.thinned: set[str] = set()  # packs that lost blobs but keep some
        self._pending: dict[str, list[tuple]] = {"objects": [], "connections": []}
        self._next: dict[str, int] = {}  # table -> the next free id, once read

    def _next_id(self, table: str, given: int | None) -> int:
        """The id of a new row: `given`, else the table's next; later ids go past given ones."""
        nxt = self._next.get(table)
        if nxt is None:
            row = self._conn.execute(  # AUTOINCREMENT counters: buffered rows never change them
                "SELECT seq FROM sqlite_sequence WHERE name = ?", (table,)
            ).fetchone()
            nxt = (row[0] if row else 0) + 1
        if given is None:
            given = nxt
        self._next[table] = max(nxt, given + 1)
        return given

    def flush(self) -> None:
        """Send the buffered rows (see the class docstring)."""
        for table, rows in self._pending.items():
            if rows:
                self._pending[table] = []
                self._conn.executemany(_INSERT[table], rows)

    def _exec(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        """A statement of this transaction, after the rows it may read."""
        if self._pending["objects"] or self._pending["connections"]:
            self.flush()
        return self._conn.execute(sql, params)

    # objects -------------------------------------------------------------------------------
    def add_object(
        self, cls: str, props: dict[str, Any], blob: str | None = None, id: int | None = None
    ) -> int:
        oid = self._next_id("objects", id)
        self._pending["objects"].append((oid, cls, _dumps(props) if props else "{}", blob))
        return oid

    def find_objects(self, sel: Selection) -> list[ObjectRow]:
        params: list[Any] = []
        if sel.ids_only:
            sql = "SELECT id, class FROM objects" + _where(sel, params) + _order_by(sel)
            sql += _limit(sel, params)
            return [ObjectRow(i, c, {}) for i, c in self._exec(sql, params)]
        sql = (
            "SELECT id, class, props, blob FROM objects"
            + _where(sel, params)
            + _order_by(sel)
            + _limit(sel, params)
        )
        loads = _loads
        return [ObjectRow(i, c, loads(p), b) for i, c, p, b in self._exec(sql, params)]

    def count_objects(self, sel: Selection) -> int:
        params: list[Any] = []
        sql = "SELECT count(*) FROM objects" + _where(sel, params)
        return self._exec(sql, params).fetchone()[0]

    def update_objects(
        self, ids: Sequence[int], set_props: dict[str, Any], remove_props: Sequence[str]
    ) -> None:
        self._update("objects", ids, set_props, remove_props)

    def _update(
        self, table: str, ids: Sequence[int], set_props: dict[str, Any], remove_props: Sequence[str]
    ) -> None:
        if not ids or not (set_props or remove_props):
            return
        expr = "props"
        params: list[Any] = []
        if remove_props:
            expr = f"json_remove({expr}, {', '.join(_path(k) for k in remove_props)})"
        if set_props:
            pairs = []
            for k, v in set_props.items():
                pairs.append(f"{_path(k)}, json(?)")
                params.append(json.dumps(v))
            expr = f"json_set({expr}, {', '.join(pairs)})"
        where = _in_list("id", list(ids), params)
        self._exec(f"UPDATE {table} SET props = {expr} WHERE {where}", params)

    def delete_objects(self, ids: Sequence[int]) -> None:
        if not ids:
            return
        params: list[Any] = []
        where = _in_list("id", list(ids), params)
        packs = {
            pack_of(r[0])
            for r in self._exec(
                f"SELECT blob FROM objects WHERE {where} AND blob IS NOT NULL", params
            )
        }
        p2: list[Any] = []
        self._exec(f"DELETE FROM connections WHERE {_in_list('src', list(ids), p2)}", p2)
        p3: list[Any] = []
        self._exec(f"DELETE FROM connections WHERE {_in_list('dst', list(ids), p3)}", p3)
        self._exec(f"DELETE FROM objects WHERE {where}", params)
        # A pack goes once no row points into it; its file is unlinked after the commit.
        for pack in sorted(packs):
            if self.pack_in_use(pack):
                self.thinned.add(pack)
            else:
                self.trash(pack)

    def trash(self, pack: str) -> None:
        """Unlink this pack once the transaction has committed (and no reader can need it)."""
        self._exec("INSERT OR IGNORE INTO blob_trash(key) VALUES (?)", (pack,))
        self.trashed.append(pack)

    def pack_rows(self, pack: str) -> list[tuple[int, str]]:
        return self._exec(
            "SELECT id, blob FROM objects WHERE blob >= ? AND blob < ?", (pack + ".", pack + "/")
        ).fetchall()

    def move_blob(self, object_id: int, old: str, new: str) -> bool:
        return bool(
            self._exec(
                "UPDATE objects SET blob = ? WHERE id = ? AND blob = ?", (new, object_id, old)
            ).rowcount
        )

    def pack_in_use(self, pack: str) -> bool:
        self.flush()
        return _pack_in_use(self._conn, pack)

    # connections ---------------------------------------------------------------------------
    def add_connection(
        self, cls: str, src: int, dst: int, props: dict[str, Any], id: int | None = None
    ) -> int:
        cid = self._next_id("connections", id)
        self._pending["connections"].append((cid, cls, src, dst, _dumps(props) if props else "{}"))
        return cid

    def _connection_where(
        self,
        sel: Selection,
        src: Sequence[int] | None,
        dst: Sequence[int] | None,
        params: list[Any],
    ) -> str:
        extra = []
        if src is not None:
            extra.append(_in_list("src", list(src), params) if src else "0")
        if dst is not None:
            extra.append(_in_list("dst", list(dst), params) if dst else "0")
        return _where(sel, params, extra)

    def find_connections(
        self, sel: Selection, src: Sequence[int] | None = None, dst: Sequence[int] | None = None
    ) -> list[ConnectionRow]:
        params: list[Any] = []
        where = self._connection_where(sel, src, dst, params)
        # The ends' classes come from the same statement (primary-key lookups per row).
        sql = (
            "SELECT id, class, src, dst, props, (SELECT class FROM objects WHERE id = src), "
            "(SELECT class FROM objects WHERE id = dst) FROM connections"
            + where
            + _order_by(sel)
            + _limit(sel, params)
        )
        return [
            ConnectionRow(i, c, s, d, _loads(p), sc or "", dc or "")
            for i, c, s, d, p, sc, dc in self._exec(sql, params)
        ]

    def count_connections(
        self, sel: Selection, src: Sequence[int] | None = None, dst: Sequence[int] | None = None
    ) -> int:
        params: list[Any] = []
        sql = "SELECT count(*) FROM connections" + self._connection_where(sel, src, dst, params)
        return self._exec(sql, params).fetchone()[0]

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
            params: list[Any] = []
            clauses = [_in_list(near, list(ref_ids), params)]
            if cls is not None:
                clauses.append("class = ?")
                params.append(cls)
            if where is not None:
                c = _Compiler()
                clauses.append(c.compile(where))
                params.extend(c.params)
            # `+id`: ordering by the bare column lets SQLite walk the class index in id order
            # (every connection of the class) to skip a sort; the few rows of the ends' index,
            # sorted, cost 0.1 ms instead of 59 ms for 49 images among 1M (bench/browse.py).
            sql = (
                f"SELECT {near}, {far} FROM connections WHERE {' AND '.join(clauses)} ORDER BY +id"
            )
            pairs.extend(self._exec(sql, params))
        return pairs

    def update_connections(
        self, ids: Sequence[int], set_props: dict[str, Any], remove_props: Sequence[str]
    ) -> None:
        self._update("connections", ids, set_props, remove_props)

    def delete_connections(self, ids: Sequence[int]) -> None:
        if ids:
            params: list[Any] = []
            self._exec(f"DELETE FROM connections WHERE {_in_list('id', list(ids), params)}", params)

    # indexes and schema --------------------------------------------------------------------
    def create_index(self, kind: str, cls: str, key: str) -> bool:
        if (kind, cls, key) in self.indexes():
            return False
        table = "objects" if kind == "entity" else "connections"
        for member in ("", "._ts"):  # the value, and the time of a date value
            name = _index_name(kind, cls, key, member)
            self._exec(
                f"CREATE INDEX IF NOT EXISTS {name} ON {table}"
                f"(class, json_extract(props, {_path(key, member)}))"
            )
        self._exec(
            "INSERT INTO property_indexes(kind, class, key, name) VALUES (?,?,?,?)",
            (kind, cls, key, _index_name(kind, cls, key, "")),
        )
        return True

    def remove_index(self, kind: str, cls: str, key: str) -> bool:
        if (kind, cls, key) not in self.indexes():
            return False
        for member in ("", "._ts"):
            self._exec(f"DROP INDEX IF EXISTS {_index_name(kind, cls, key, member)}")
        self._exec(
            "DELETE FROM property_indexes WHERE kind=? AND class=? AND key=?", (kind, cls, key)
        )
        return True

    def indexes(self) -> set[tuple[str, str, str]]:
        return {tuple(r) for r in self._exec("SELECT kind, class, key FROM property_indexes")}  # type: ignore[misc]

    def schema(self, kind: str) -> dict[str, ClassStats]:
        table = "objects" if kind == "entity" else "connections"
        out: dict[str, ClassStats] = {}
        for cls, n in self._exec(f"SELECT class, count(*) FROM {table} GROUP BY class"):
            out[cls] = ClassStats(n, {})
        type_sql = (
            "CASE WHEN j.type IN ('integer','real') THEN 'Number' "
            "WHEN j.type = 'text' THEN 'String' "
            "WHEN j.type IN ('true','false') THEN 'Boolean' "
            "WHEN j.type = 'object' AND json_extract(j.value, '$._date') IS NOT NULL "
            "THEN 'DateTime' ELSE 'JSON' END"
        )
        rows = self._exec(
            f"SELECT t.class, j.key, {type_sql} AS ty, count(*) FROM {table} t, json_each(t.props) j "
            "WHERE substr(j.key, 1, 1) != '_' GROUP BY t.class, j.key, ty ORDER BY count(*)"
        )
        for cls, key, ty, n in rows:
            props = out[cls].properties
            total = n + (props[key][0] if key in props else 0)
            props[key] = (total, ty)  # the most common type wins (rows come in ascending count)
        if kind == "connection":
            ends = self._exec(
                "SELECT c.class, s.class, d.class, count(*) FROM connections c "
                "JOIN objects s ON s.id = c.src JOIN objects d ON d.id = c.dst "
                "GROUP BY c.class, s.class, d.class"
            )
            for cls, s, d, n in ends:
                out[cls].ends[(s, d)] = n
        return out


class _ReadTxn:
    """A read snapshot; a plain class because reads are the hot path."""

    __slots__ = ("txn", "blobs", "_token")

    def __init__(self, store: SQLiteStore, conn: sqlite3.Connection, blobs: bool) -> None:
        self.txn = SQLiteTxn(store, conn, writable=False)
        self.blobs = blobs

    def __enter__(self) -> SQLiteTxn:
        if self.blobs:
            # Registered before the first read: no pack this snapshot can see goes early.
            self._token = self.txn.store.reclaimer.enter()
        self.txn._exec("BEGIN")  # one snapshot for the whole query
        return self.txn

    def __exit__(self, *exc: object) -> None:
        try:
            self.txn._exec("COMMIT")
        finally:
            if self.blobs:
                self.txn.store.reclaimer.leave(self._token)


class SQLiteStore:
    """SQLite database file `lensdb.sqlite3` plus a `blobs/` folder, both in one data folder."""

    ids_in_commit_order = True  # one writer at a time, ids from one counter
    local_lookups = True

    def __init__(self, folder: str | Path, *, durable: bool = False) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / "lensdb.sqlite3"
        self.durable = durable
        self.blobs = BlobFolder(self.folder / "blobs", durable=durable)
        self.reclaimer = Reclaimer(self.blobs.unlink)
        self._write_lock = threading.Lock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._closed = False
        self._writer = self._connect(_WRITER_CACHE_KIB)
        self._writer.executescript(SCHEMA)
        self._recover()

    def _connect(self, cache_kib: int = _READER_CACHE_KIB) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path,
            isolation_level=None,
            check_same_thread=False,
            timeout=60,
            cached_statements=512,
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={'FULL' if self.durable else 'NORMAL'}")
        conn.execute(f"PRAGMA cache_size=-{cache_kib}")
        # Process-wide: past it SQLite recycles cache pages instead of growing (all connections).
        conn.execute(f"PRAGMA soft_heap_limit={_CACHE_BUDGET}")
        conn.execute("PRAGMA temp_store=MEMORY")
        conn.execute("PRAGMA mmap_size=268435456")
        return conn

    def _recover(self) -> None:
        def referenced(packs: list[str]) -> set[str]:
            return {p for p in packs if _pack_in_use(self._writer, p)}

        # Under the write lock: another process sharing the folder may be staging blobs of a
        # transaction it has not committed yet; those must wait for its commit, not be removed.
        self._writer.execute("BEGIN IMMEDIATE")
        try:
            discarded = self.blobs.recover(referenced)
            trash = [r[0] for r in self._writer.execute("SELECT key FROM blob_trash")]
            self.blobs.unlink(trash)
            self._writer.execute("DELETE FROM blob_trash")
            self._writer.execute("COMMIT")
        except BaseException:
            rollback(self._writer)
            raise
        if discarded or trash:
            log.info(
                "recovery: %d pack file(s) of unfinished transactions removed, %d pack "
                "file(s) of committed deletes cleaned up",
                discarded,
                len(trash),
            )

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            conn.execute("PRAGMA query_only=1")
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    def read(self, blobs: bool = True) -> _ReadTxn:
        return _ReadTxn(self, self._reader(), blobs)

    @contextmanager
    def write(self, staged: object = None, *, optimistic: bool = False) -> Iterator[SQLiteTxn]:
        # optimistic: ignored, one writer at a time in this process holds the lock from the start
        with self._write_lock:
            if self._closed:
                raise RuntimeError("the database is closed")
            conn = self._writer
            txn = SQLiteTxn(self, conn, writable=True)
            try:
                conn.execute("BEGIN IMMEDIATE")
                unlinked = self.reclaimer.drain_done()
                if unlinked:  # (kept in the trash if this fails: recovery unlinks them again)
                    params: list[Any] = []
                    conn.execute(
                        f"DELETE FROM blob_trash WHERE {_in_list('key', unlinked, params)}", params
                    )
                yield txn
                txn.flush()
                conn.execute("COMMIT")
            except sqlite3.Error as e:
                rollback(conn)
                refused = sqlite_refusal(e, self.folder)
                if refused is None:
                    raise
                raise refused from e
            except BaseException:
                rollback(conn)
                raise
            if txn.trashed:
                self.reclaimer.retire(txn.trashed)
        self._compact(txn.thinned.difference(txn.trashed))

    def stage_blobs(self, blobs: list[bytes]) -> StagedBlobs:
        return self.blobs.stage(blobs, on_thin=lambda pack: self._compact({pack}))

    def _compact(self, packs: set[str]) -> None:
        compact(self, packs)

    def pack_size(self, pack: str) -> int:
        return self.blobs.size(pack)

    def get_blob(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        return self.blobs.read(key, offset, length)

    def get_blobs(self, keys: Sequence[str]) -> list[bytes]:
        return [self.blobs.read(key) for key in keys]

    def blob_key(self, cls: str, object_id: int) -> str | None:
        # Autocommit read on this thread's reader: the last commit, no BEGIN/COMMIT round.
        row = (
            self._reader()
            .execute("SELECT blob FROM objects WHERE id = ? AND class = ?", (object_id, cls))
            .fetchone()
        )
        return row[0] if row else None

    def locate_blob(self, key: str) -> FileRange | None:
        return self.blobs.locate(key)

    def blob_size(self, key: str) -> int:
        return self.blobs.blob_size(key)

    def blob_url(self, key: str, seconds: int, content_type: str | None) -> None:
        """No URL: the embedded store's blobs lie in local files, served by lensdb itself."""
        return None

    def check(self, repair: bool = False) -> BlobCheck:
        """Compare blob rows with the pack files: rows whose bytes are missing, packs no row
        uses (removed when `repair`), and the bytes deleted blobs still hold."""
        # Listed in this order so that a query committing meanwhile is never taken for an
        # orphan: its pack was either staged when intents are read, or committed before the
        # snapshot below.
        disk = self.blobs.on_disk()
        staged = self.blobs.staged()
        with self.read() as txn:
            retired = {r[0] for r in txn._exec("SELECT key FROM blob_trash")}
            keys = (k for (k,) in txn._exec("SELECT blob FROM objects WHERE blob IS NOT NULL"))
            report = compare_packs(disk, keys, staged | retired)
        if repair and report.orphans:
            self.blobs.unlink(report.orphans)
            log.info("check: removed %d pack file(s) that no row uses", len(report.orphans))
        return report

    def explain(self, sql_params: tuple[str, list[Any]]) -> list[str]:
        """EXPLAIN QUERY PLAN lines, for tests and diagnostics.

        Asked on a fresh connection: EXPLAIN reads no schema cookie, so a long-lived reader
        (and its statement cache) would describe the plan from before a CreateIndex.
        """
        sql, params = sql_params
        conn = self._connect()
        try:
            return [r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql, params)]
        finally:
            conn.close()

    def plan_for(self, sel: Selection) -> list[str]:
        params: list[Any] = []
        sql = "SELECT id FROM objects" + _where(sel, params) + _order_by(sel) + _limit(sel, params)
        return self.explain((sql, params))

    def close(self) -> None:
        with self._write_lock:
            self._closed = True
            with self._readers_lock:
                for conn in self._readers:
                    try:
                        conn.close()
                    except sqlite3.ProgrammingError:
                        pass  # created in another thread that still holds it
                self._readers.clear()
            self._writer.close()
            self.blobs.close()
