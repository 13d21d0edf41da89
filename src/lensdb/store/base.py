"""The interface between the query engine and a storage backend.

The engine speaks in object ids, classes, stored property dicts and the predicate tree below;
a backend turns those into its own queries (SQL for SQLite or PostgreSQL) and keeps blobs.
Everything a query does happens inside one `Txn`, committed or rolled back as a whole.

The interface is shaped for a database across a network: reads come in sets (a `Selection`
with many ids, `neighbors` of many refs), counts are asked as counts, and a connection row
carries its ends' classes, so no answer needs one round trip per row.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from lensdb.errors import write_refusal_cause


class StoreError(Exception):
    """A backend failure the engine reports to the client as it is (status -1, this text)."""


class WriteRefused(StoreError):
    """The storage refused a write: the disk is full, the folder became read-only, ... The
    query changed nothing (its transaction rolled back, its staged bytes are gone), reads keep
    working, and the same query succeeds once the cause is fixed."""

    def __init__(self, cause: str) -> None:
        super().__init__(
            f"write refused: {cause}; nothing was changed, reads still work, "
            "and writes succeed again once this is fixed"
        )
        self.cause = cause


def refused_write(error: OSError, folder: str | os.PathLike[str]) -> WriteRefused | None:
    """The clear error for an OS error met writing into `folder`, or None if it is not the
    storage's (then the caller lets the original error through)."""
    cause = write_refusal_cause(folder, os_errno=error.errno)
    return WriteRefused(cause) if cause else None


class WriteConflict(StoreError):
    """An optimistic write transaction (`Store.write(optimistic=True)`) found, once it held the
    writer lock, that a row it had read before was changed by another query that committed in
    between. Nothing was written (the transaction rolled back; staged blobs stay staged): run
    the query again, holding the lock from its first statement."""


class BlobMissing(StoreError, LookupError):
    """A row names a blob whose bytes are gone: a delete that committed after the reading
    snapshot began removed them, or the storage lost them (`lensdb check` reports which)."""

    def __init__(self, key: str) -> None:
        super().__init__(f"blob {key} is missing from the blob store")
        self.key = key


# --- predicates over stored properties -------------------------------------------------------


@dataclass(frozen=True)
class DateValue:
    """A date in a constraint, as epoch seconds."""

    ts: float


Scalar = int | float | str | bool | DateValue | None


@dataclass(frozen=True)
class Compare:
    """`key op value`. Null rules: `== None` means the key is absent, `!= None` present;
    `!=` with a value also matches objects lacking the key; other operators never do.
    Values of another type than `value` never match (except under `!=`)."""

    key: str
    op: str  # one of == != < <= > >=
    value: Scalar


@dataclass(frozen=True)
class OneOf:
    """`key in values` (or `not in` with negate, which also matches objects lacking the key)."""

    key: str
    values: tuple[Scalar, ...]
    negate: bool = False


@dataclass(frozen=True)
class IdIn:
    """The object's own id is (or, negated, is not) among `ids`."""

    ids: tuple[int, ...]
    negate: bool = False


# The comparisons IdCompare takes, each mapped to its SQL spelling (a fixed table, never user text).
ID_OPS = {"<": "<", "<=": "<=", ">": ">", ">=": ">="}


@dataclass(frozen=True)
class IdCompare:
    """The object's own id compared with `id` (`op` one of < <= > >=): keyset paging in id order."""

    op: str
    id: int


@dataclass(frozen=True)
class ClassIn:
    """The object's class is (or, negated, is not) among `classes`."""

    classes: tuple[str, ...]
    negate: bool = False


@dataclass(frozen=True)
class Not:
    part: Predicate


@dataclass(frozen=True)
class AllOf:
    parts: tuple[Predicate, ...]


@dataclass(frozen=True)
class AnyOf:
    parts: tuple[Predicate, ...]


Predicate = Compare | OneOf | IdIn | IdCompare | ClassIn | Not | AllOf | AnyOf


@dataclass(frozen=True)
class SortKey:
    key: str  # a property name, or "_uniqueid" for insertion order
    descending: bool = False


# --- rows --------------------------------------------------------------------------------------


@dataclass(slots=True)
class ObjectRow:
    id: int
    cls: str
    props: dict[str, Any]
    blob: str | None = None


@dataclass(slots=True)
class ConnectionRow:
    id: int
    cls: str
    src: int
    dst: int
    props: dict[str, Any] = field(default_factory=dict)
    # The classes of the two ends, read in the same statement (for `_src`/`_dst` uniqueids).
    src_cls: str = ""
    dst_cls: str = ""


@dataclass
class ClassStats:
    matched: int
    # key -> (objects having it, type name)
    properties: dict[str, tuple[int, str]]
    # connections only: (src class, dst class) -> count
    ends: dict[tuple[str, str], int] = field(default_factory=dict)


@dataclass(frozen=True)
class Selection:
    """Which objects (or connections) a read looks at.

    `classes` None means every class; `ids` None means no restriction by id.
    """

    classes: Sequence[str] | None = None
    where: Predicate | None = None
    ids: Sequence[int] | None = None
    sort: Sequence[SortKey] = ()
    offset: int = 0
    limit: int | None = None
    # The reader needs only ids and classes (a Find that only binds a `_ref`): rows come back
    # with empty props and no blob, which spares decoding every matched row's properties.
    ids_only: bool = False


@dataclass(frozen=True, slots=True)
class FileRange:
    """Where a blob's bytes lie in a local file, so a server can read just the range it sends
    instead of asking for the whole blob through a query (the media gateway's fast path)."""

    path: str
    offset: int
    length: int

    def read(self, offset: int = 0, length: int | None = None) -> bytes:
        """`length` bytes from `offset` within the blob (None: to its end), clipped to it.
        Raises `BlobMissing` when the file went away (a delete, compaction moving the blob)."""
        offset = min(max(offset, 0), self.length)
        want = self.length - offset if length is None else max(0, min(length, self.length - offset))
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            raise BlobMissing(self.path) from None
        try:
            return read_range(fd, self.offset + offset, want, self.path)
        finally:
            os.close(fd)


def read_range(fd: int, offset: int, length: int, name: str) -> bytes:
    """`length` bytes of an open file from `offset`: the one reader of pack file ranges (the
    embedded store, a shared folder, the media gateway). `BlobMissing(name)` when the file is
    shorter than that."""
    data = os.pread(fd, length, offset)
    while len(data) < length:  # reads of over 2 GB come back in parts
        more = os.pread(fd, length - len(data), offset + len(data))
        if not more:
            raise BlobMissing(name)  # the pack is shorter than the row says
        data += more
    return data


# --- the interface ----------------------------------------------------------------------------


class Txn(Protocol):
    """One transaction. Reads see the transaction's own writes."""

    # objects
    def add_object(
        self, cls: str, props: dict[str, Any], blob: str | None = None, id: int | None = None
    ) -> int:
        """A new object; `id` keeps a given id (copying a dataset), else the next one."""
        ...

    def find_objects(self, sel: Selection) -> list[ObjectRow]: ...
    def count_objects(self, sel: Selection) -> int: ...
    def update_objects(
        self, ids: Sequence[int], set_props: dict[str, Any], remove_props: Sequence[str]
    ) -> None: ...
    def delete_objects(self, ids: Sequence[int]) -> None:
        """Delete objects, their connections and their blobs (blobs after commit)."""
        ...

    # connections
    def add_connection(
        self, cls: str, src: int, dst: int, props: dict[str, Any], id: int | None = None
    ) -> int: ...
    def find_connections(
        self, sel: Selection, src: Sequence[int] | None = None, dst: Sequence[int] | None = None
    ) -> list[ConnectionRow]: ...
    def count_connections(
        self, sel: Selection, src: Sequence[int] | None = None, dst: Sequence[int] | None = None
    ) -> int: ...
    def neighbors(
        self, ref_ids: Sequence[int], direction: str, cls: str | None, where: Predicate | None
    ) -> list[tuple[int, int]]:
        """(ref id, neighbour id) pairs. direction "out": ref → neighbour; "in": neighbour → ref;
        "any": either."""
        ...

    def update_connections(
        self, ids: Sequence[int], set_props: dict[str, Any], remove_props: Sequence[str]
    ) -> None: ...
    def delete_connections(self, ids: Sequence[int]) -> None: ...

    # indexes and schema
    def create_index(self, kind: str, cls: str, key: str) -> bool: ...
    def remove_index(self, kind: str, cls: str, key: str) -> bool: ...
    def indexes(self) -> set[tuple[str, str, str]]: ...
    def schema(self, kind: str) -> dict[str, ClassStats]: ...


@dataclass(frozen=True, slots=True)
class Change:
    """One entry of a change log: `object_id` was added to (or removed from) a topic."""

    seq: int
    object_id: int
    removed: bool


@runtime_checkable
class ChangeLog(Protocol):
    """A transaction of a backend shared by several servers that logs changes per topic (a
    descriptor set's id), so each server catches its in-memory index up by reading only what
    changed since it last looked, instead of comparing every id of the set.

    Sequence numbers grow in commit order: entries are written under the backend's one-writer
    lock, so a snapshot that shows an entry shows every entry with a lower number.
    """

    def log_changes(self, topic: int, added: Sequence[int], removed: Sequence[int]) -> int:
        """Record this transaction's additions, then its removals (replayed in that order).
        Returns the highest sequence number written (0 when nothing was)."""
        ...

    def changes_since(self, topic: int, after: int) -> list[Change] | None:
        """The topic's entries with a sequence number above `after`, oldest first; None when
        some of them may have been trimmed (older than the log keeps): the caller compares
        what it holds with the rows instead."""
        ...

    def last_change(self, topic: int) -> int:
        """The topic's highest sequence number in this snapshot, trimmed ones included (0 when
        none)."""
        ...

    def drop_changes(self, topic: int) -> None:
        """Forget a topic's entries (its set was deleted; set ids are never reused)."""
        ...


@runtime_checkable
class Prefetching(Protocol):
    """A transaction across a network may take, in one round trip, the reads a query is about
    to make (the engine plans them from the whole query before running it). A later
    `find_objects` with an equal `Selection` is answered from them only when nothing written
    in the transaction since could change its answer; otherwise it reads as usual. An
    in-process backend has no round trips to save and does not implement this."""

    def prefetch(self, selections: Sequence[Selection]) -> None: ...


class Staged(Protocol):
    """Blobs written ahead of the transaction that references them (see `Store.stage_blobs`)."""

    keys: list[str]

    def finish(self, used: Iterable[str]) -> None:
        """After commit: keep the blobs whose keys rows now reference, drop the rest."""
        ...

    def abort(self) -> None:
        """After rollback: drop them all."""
        ...


class Store(Protocol):
    """A storage backend: transactions plus blob writes and reads.

    New blobs are staged before the write transaction (outside its lock, so writers overlap
    their file I/O); rows name them by key; `finish` or `abort` settles them afterwards.
    """

    # True when a row committed later always has a higher id than every row committed before it
    # (one writer, one id sequence: SQLite). PostgreSQL servers take ids in blocks, so a row
    # committed later by one server may have a lower id than another server's rows.
    ids_in_commit_order: bool
    # True when `blob_key` is a read of a local file (SQLite: about 10 us), cheap enough to run
    # on a server's event loop; False when it is a network round trip (PostgreSQL).
    local_lookups: bool

    def stage_blobs(self, blobs: list[bytes]) -> Staged: ...

    def read(self, blobs: bool = True) -> AbstractContextManager[Txn]:
        """A read-only transaction: every statement in it sees the same commit (one snapshot).
        blobs=False promises no `get_blob` inside it, so it need not keep blob files alive."""
        ...

    def write(
        self, staged: Staged | None = None, *, optimistic: bool = False
    ) -> AbstractContextManager[Txn]:
        """The write transaction; `staged` are the blobs its rows may reference (a backend
        whose intents live in the database settles them in this same transaction).

        optimistic=True lets a backend shared by several servers read without its writer lock
        until the first write, then re-read under the lock everything read before; when
        anything differs it raises `WriteConflict` (nothing written) and the caller runs the
        query again without the option. A backend with one in-process writer ignores it."""
        ...

    def get_blob(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        """The blob's bytes, or `length` of them from `offset` (None: to the end); a range
        reads only those bytes from storage. Raises `BlobMissing` when they are gone."""
        ...

    def get_blobs(self, keys: Sequence[str]) -> list[bytes]:
        """Several whole blobs, in order (object storage fetches them in parallel)."""
        ...

    def blob_size(self, key: str) -> int:
        """The blob's length in bytes, without reading it."""
        ...

    def blob_key(self, cls: str, object_id: int) -> str | None:
        """The blob key of object `object_id` if it is of class `cls`, as last committed; None
        when there is no such object or it has no blob. One indexed lookup, outside any
        transaction: what the media gateway asks per request."""
        ...

    def locate_blob(self, key: str) -> FileRange | None:
        """Where the blob's bytes lie in a local file; None when they are not in one (object
        storage: read them with `get_blob`, which reads only the range asked for)."""
        ...

    def blob_url(self, key: str, seconds: int, content_type: str | None) -> str | None:
        """A URL at which the storage itself serves exactly this blob's bytes for `seconds` (a
        presigned GET, answered with `content_type`), or None when there is none: the blob lies
        in a local file, or shares its object with other blobs (a URL can not name a range of
        an object; the client's Range header would be its own)."""
        ...

    def check(self, repair: bool = False) -> BlobCheck:
        """Compare blob rows with the stored bytes (see `BlobCheck`)."""
        ...

    def close(self) -> None: ...


@dataclass
class BlobCheck:
    """What `lensdb check` reports, on every backend."""

    rows: int = 0  # rows that have a blob
    packs: int = 0  # pack files (objects) in blob storage
    live_bytes: int = 0  # bytes those rows use
    pack_bytes: int = 0  # bytes the packs take
    missing: list[str] = field(default_factory=list)  # blob keys whose bytes are not stored
    orphans: list[str] = field(default_factory=list)  # packs no row uses


class BlobBackend(Protocol):
    """Where a network backend keeps its packs: a shared folder or an S3 bucket. It only moves
    bytes; which packs are live, staged or deleted is the database's business."""

    def put(self, pack: str, blobs: list[bytes]) -> None:
        """Store these blobs back to back as one pack."""
        ...

    def read_pack(self, pack: str, offset: int, length: int) -> bytes:
        """`length` bytes of a pack from `offset`; raises `BlobMissing` if the pack is gone."""
        ...

    def size(self, pack: str) -> int:
        """The pack's length in bytes (for compaction)."""
        ...

    def delete(self, packs: Iterable[str]) -> None: ...
    def list_packs(self) -> dict[str, int]:
        """Every pack stored, with its size."""
        ...

    def describe(self) -> str: ...
    def locate(self, key: str) -> FileRange | None:
        """Where the blob's bytes lie in a local file (a shared file system); None otherwise."""
        ...

    def url(self, pack: str, seconds: int, content_type: str | None) -> str | None:
        """A presigned URL serving the whole pack for `seconds`; None when the backend has
        none (a shared folder)."""
        ...

    def close(self) -> None: ...
