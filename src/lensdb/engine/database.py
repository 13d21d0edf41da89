"""`Database`: run a query (a JSON command array plus blobs) as one transaction."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lensdb.engine import admin, connections, descriptors, objects, vdms
from lensdb.engine.constraints import parse_constraints
from lensdb.engine.context import BlobInput, Context, Params, takes_blob
from lensdb.engine.ids import FAMILY_CODES, parse_uniqueid
from lensdb.errors import QueryError, Status, answer, failure
from lensdb.index import VectorIndexes
from lensdb.store.base import (
    FileRange,
    Prefetching,
    Selection,
    Staged,
    Store,
    StoreError,
    WriteConflict,
)
from lensdb.store.factory import open_store

log = logging.getLogger(__name__)

Handler = Callable[[Context, object], dict[str, Any]]
DEFAULT_MAX_RESPONSE_BYTES = 1 << 30


def _family_handlers() -> dict[str, Handler]:
    table: dict[str, Handler] = {}
    for name, fam in objects.FAMILIES.items():
        for verb, fn in (
            ("Add", objects.add),
            ("Find", objects.find),
            ("Update", objects.update),
            ("Delete", objects.delete),
        ):
            table[f"{verb}{name}"] = (lambda f, fm: lambda ctx, body: f(ctx, fm, body))(fn, fam)
    return table


def _not_supported(name: str) -> Handler:
    def handler(ctx: Context, body: object) -> dict[str, Any]:
        raise QueryError(
            f"{name} is not supported yet by lensdb (videos, clips, frames and "
            "descriptors are planned)"
        )

    return handler


def _delete_nothing(ctx: Context, body: object) -> dict[str, Any]:
    # Nothing of these families can exist yet, so deleting matches nothing (SDK wipes rely on it).
    p = Params(body, frozenset({"ref", "constraints", "with_name"}))
    if "ref" in p:
        ctx.ref(p.get("ref"))
    parse_constraints(p.get("constraints"))
    return answer(count=0)


HANDLERS: dict[str, Handler] = {
    **_family_handlers(),
    "AddConnection": connections.add,
    "FindConnection": connections.find,
    "UpdateConnection": connections.update,
    "DeleteConnection": connections.delete,
    "GetStatus": admin.get_status,
    "GetSchema": admin.get_schema,
    "CreateIndex": admin.create_index,
    "RemoveIndex": admin.remove_index,
    "GetIndexes": admin.get_indexes,
    "UserLogMessage": admin.user_log_message,
    "DeleteExpired": admin.delete_expired,
    "AddDescriptorSet": descriptors.add_set,
    "FindDescriptorSet": descriptors.find_set,
    "UpdateDescriptorSet": descriptors.update_set,
    "DeleteDescriptorSet": descriptors.delete_set,
    "AddDescriptor": descriptors.add,
    "FindDescriptor": descriptors.find,
    "UpdateDescriptor": descriptors.update,
    "DeleteDescriptor": descriptors.delete,
    "ClassifyDescriptor": descriptors.classify,
}
for _fam in ("Video", "Clip", "Frame"):
    for _verb in ("Add", "Find", "Update"):
        HANDLERS[f"{_verb}{_fam}"] = _not_supported(f"{_verb}{_fam}")
    HANDLERS[f"Delete{_fam}"] = _delete_nothing
for _name in ("FindFrames", "RegionIoU"):
    HANDLERS[_name] = _not_supported(_name)

# Commands of the query language that lensdb answers with a clear refusal, checked before the
# blob count (their blob layout is not known, so a count error would hide the reason).
UNSUPPORTED = {
    "FindDescriptorBatch": (
        "FindDescriptorBatch is not supported by lensdb (the ApertureDB docs call it "
        "experimental and the aperturedb SDK 0.5.3 never sends it): send one FindDescriptor "
        "with k_neighbors per query vector, several in one query if you like"
    ),
}

READ_ONLY = {n for n in HANDLERS if n.startswith(("Find", "Get"))} | {"ClassifyDescriptor"}
# Write queries that hold the writer lock from their first statement, never optimistic (see
# Store.write): those touching descriptors, whose in-memory vector indexes follow the rows
# (DeleteEntity may delete descriptors too), in ways the store's re-check of reads does not see.
PESSIMISTIC = {n for n in HANDLERS if "Descriptor" in n} | {"DeleteEntity"}
# Finds that may return stored bytes (images, blobs, crops of regions); the others need not
# pin the blob files their snapshot could see.
# (A k-NN search may load a set's index from its stored vectors.)
READS_BLOBS = {f"Find{f.name}" for f in objects.FAMILIES.values() if f.cls is not None} | {
    "FindDescriptor",
    "ClassifyDescriptor",
}
# Commands whose blob is a vector: decoded before the transaction, stored only by AddDescriptor.
VECTOR_INPUTS = frozenset({"AddDescriptor", "FindDescriptor", "ClassifyDescriptor"})


class _Abort(Exception):
    def __init__(self, response: dict[str, Any]) -> None:
        self.response = response


@dataclass(frozen=True, slots=True)
class MediaSource:
    """One object's blob as the media gateway serves it, found without running a query.

    `key` is the store's name for the bytes; it changes whenever they do (packs are written once
    and never changed in place), so it makes a strong ETag. `file` says where they lie on a local
    disk, or is None (object storage). `read` reads just the range asked for, either way.
    """

    key: str
    length: int
    file: FileRange | None
    store: Store = field(repr=False, compare=False)

    def read(self, offset: int, length: int) -> bytes:
        """`length` bytes from `offset` within the blob: a pread of the pack file's range when it
        lies on a local disk, else a ranged read from the store. Raises `BlobMissing` (a
        LookupError) once the bytes are gone (deleted, or moved by compaction)."""
        if self.file is not None:
            return self.file.read(offset, length)
        return self.store.get_blob(self.key, offset, length)

    def url(self, seconds: int, content_type: str | None) -> str | None:
        """A URL at which the object store serves these bytes itself for `seconds`, or None
        (see `Store.blob_url`)."""
        return self.store.blob_url(self.key, seconds, content_type)


class Database:
    """A lensdb database: a folder (embedded SQLite + pack files, created if missing), or a
    `postgresql://` URL with `blobs` naming where the bytes go (`s3://BUCKET/PREFIX` or
    `file:///shared/path`).

    `query(commands, blobs)` answers like ApertureDB's `Connector.query`: a list with one
    response per command, or, when the transaction failed, one `{"status", "info"}` object.
    Thread-safe: readers run concurrently, writers one at a time.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        blobs: str | None = None,
        store: Store | None = None,
        durable: bool = False,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        self.path = path if isinstance(path, str) and "://" in path else Path(path)
        self.store: Store = store or open_store(path, blobs, durable=durable)
        self.max_response_bytes = max_response_bytes
        # Embedded: indexes are saved beside the data so a big set opens fast. On a network store
        # each server keeps them in memory only, built from the stored vectors and caught up.
        self.vectors = VectorIndexes(self.path / "vectors" if isinstance(self.path, Path) else None)
        self._closed = False

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def load_vector_indexes(self) -> int:
        """Load (or read back, and catch up) every descriptor set's index now rather than at
        its first search, which would otherwise wait for it; a server calls this in the
        background at start. Returns how many sets it loaded."""
        with self.store.read() as txn:
            ctx = Context(self.store, txn, [], self.max_response_bytes)
            ctx.extra["vectors"] = self.vectors
            return descriptors.load_all(ctx)

    def sync_vector_indexes(self) -> tuple[int, list[int]]:
        """Bring the loaded descriptor indexes up to the stored rows now rather than at their
        next search: catch up those whose set another process or server changed (from the
        change log on PostgreSQL), and unload those whose set was deleted, which no search
        would ever name again. A server calls this every SYNC_EVERY seconds. Returns (how
        many were caught up, the set ids unloaded)."""
        loaded = self.vectors.loaded()  # before the snapshot: each set was there already
        if not loaded:
            return 0, []
        with self.store.read() as txn:
            ctx = Context(self.store, txn, [], self.max_response_bytes)
            ctx.extra["vectors"] = self.vectors
            return descriptors.sync_loaded(ctx, loaded)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        self._closed = True
        self.vectors.save()
        self.store.close()

    @property
    def local_lookups(self) -> bool:
        """`media_source` reads a local file and may run on an event loop (see Store)."""
        return self.store.local_lookups

    def media_source(self, cls: str, uniqueid: str) -> MediaSource | None:
        """The blob of the `cls` object (`_Image`, `_Blob`) with this _uniqueid, or None.

        One indexed lookup instead of a FindImage: parsing, validating and shaping a query cost
        about 250 us per image, the lookup about 10 us (SQLite), which is what decides how many
        images a second the gateway serves. Access rules are the caller's, as for any query.
        """
        parsed = parse_uniqueid(uniqueid)
        if parsed is None or parsed[0] != FAMILY_CODES.get(cls):
            return None
        key = self.store.blob_key(cls, parsed[1])
        if key is None:
            return None
        file = self.store.locate_blob(key)
        return MediaSource(
            key, file.length if file else self.store.blob_size(key), file, self.store
        )

    def query(
        self,
        commands: list | str | bytes,
        blobs: list[bytes] | None = None,
        dialect: str = "aperturedb",
    ) -> tuple[list | dict, list[bytes]]:
        if dialect == "vdms":
            return vdms.run(self._query, commands, blobs)
        return self._query(commands, blobs)

    def _query(
        self, commands: list | str | bytes, blobs: list[bytes] | None = None
    ) -> tuple[list | dict, list[bytes]]:
        try:
            parsed = parse_query(commands, blobs)
        except QueryError as e:
            return e.response(), []
        names = [next(iter(c)) for c in parsed]
        staged = None
        ctx: Context | None = None
        try:
            writes = not READ_ONLY.issuperset(names)
            if not writes:
                # One snapshot even for one command: a Find runs several statements (count,
                # unique, traversal, rows) that must all see the same commit.
                inputs = _prepare_inputs(parsed, blobs or [])
                opener = self.store.read(blobs=not READS_BLOBS.isdisjoint(names))
            else:
                inputs, staged = self._stage_inputs(parsed, blobs or [])
            # Optimistic first (a network store reads without its writer lock, so servers'
            # queries overlap); when another query changed what it read, once more, holding
            # the lock throughout, which cannot conflict.
            optimistic = writes and PESSIMISTIC.isdisjoint(names)
            while True:
                if writes:
                    opener = self.store.write(staged, optimistic=optimistic)
                try:
                    with opener as txn:
                        ctx = Context(self.store, txn, inputs, self.max_response_bytes)
                        ctx.extra["vectors"] = self.vectors
                        ctx.extra["writes"] = writes
                        if writes and isinstance(txn, Prefetching):
                            _prefetch(txn, names, parsed)
                        responses = [
                            self._run(ctx, i, name, cmd[name], len(parsed))
                            for i, (name, cmd) in enumerate(zip(names, parsed, strict=True))
                        ]
                        if writes:
                            descriptors.before_commit(ctx)
                    break
                except WriteConflict:
                    if not optimistic:
                        raise
                    optimistic = False
                    if ctx is not None:
                        descriptors.after_rollback(ctx, self.vectors)
                    log.debug("write conflict: running the query again under the lock")
        except _Abort as a:
            if staged is not None:
                staged.abort()
            if ctx is not None:
                descriptors.after_rollback(ctx, self.vectors)
            return a.response, []
        except StoreError as e:  # the backend says what went wrong (unreachable, full, ...)
            if staged is not None:
                staged.abort()
            if ctx is not None:
                descriptors.after_rollback(ctx, self.vectors)
            log.warning("query failed: %s", e)
            return failure(f"storage: {e}"), []
        except Exception as e:  # a bug or a storage failure: answer, log, keep serving
            if staged is not None:
                staged.abort()
            if ctx is not None:
                descriptors.after_rollback(ctx, self.vectors)
            log.exception("query failed")
            return failure(f"internal error: {type(e).__name__}: {e}"), []
        if staged is not None:
            staged.finish(ctx.used_keys)
        if writes:
            descriptors.after_commit(ctx, self.vectors)
        return responses, ctx.blobs_out

    def _stage_inputs(
        self, parsed: list[dict], blobs: list[bytes]
    ) -> tuple[list[BlobInput], Staged]:
        """Prepare and write input blobs before the write lock, so writers overlap this work."""
        inputs = _prepare_inputs(parsed, blobs)
        ready = [i for i in inputs if i.data is not None]
        staged = self.store.stage_blobs([i.data for i in ready])  # type: ignore[misc]
        for item, key in zip(ready, staged.keys, strict=True):
            item.key = key
            item.data = None  # the bytes are on disk now; keep memory low for big batches
        return inputs, staged

    def _run(self, ctx: Context, i: int, name: str, body: object, n: int) -> dict[str, Any]:
        try:
            return {name: HANDLERS[name](ctx, body)}
        except QueryError as e:
            status, info = e.status, e.info
        except RecursionError:
            status, info = Status.ERROR, "parameters nested too deeply"
        where = f"{name} (command {i + 1} of {n})" if n > 1 else name
        raise _Abort(failure(f"{where}: {info}", status, FailedCommand=name))


# Look-ups taken ahead in one round trip, at most (a bound on what one query holds in memory).
MAX_PREFETCH = 2000


def _prefetch(txn: Prefetching, names: list[str], parsed: list[dict]) -> None:
    """Hand a network store the look-ups this query will make, so a ParallelLoader batch of
    100 `if_not_found` adds (or `unique` Finds) costs one round trip instead of 100; see
    bench/scale_ingest.py."""
    planned: list[Selection] = []
    for name, cmd in zip(names, parsed, strict=True):
        sel = objects.planned_read(name, cmd[name])
        if sel is not None:
            planned.append(sel)
            if len(planned) == MAX_PREFETCH:
                break
    if len(planned) > 1:  # one look-up costs its round trip either way
        txn.prefetch(planned)


def _prepare_inputs(parsed: list[dict], blobs: list[bytes]) -> list[BlobInput]:
    consumers = [(n, b) for c in parsed for n, b in c.items() if takes_blob(n, b)]
    return [
        descriptors.prepare_input(data, keep=n == "AddDescriptor")
        if n in VECTOR_INPUTS
        else objects.prepare_input(n, b, data)
        for (n, b), data in zip(consumers, blobs, strict=True)
    ]


def parse_query(commands: list | str | bytes, blobs: list[bytes] | None) -> list[dict]:
    """Check the envelope and blob count before any work is done."""
    if isinstance(commands, bytes | bytearray):
        commands = commands.decode("utf-8", errors="replace")
    if isinstance(commands, str):
        try:
            commands = json.loads(commands)
        except ValueError as e:
            raise QueryError(f"Error parsing the query, ill formed JSON: {e}") from None
        except RecursionError:
            raise QueryError("Error parsing the query: JSON nested too deeply") from None
    if not isinstance(commands, list):
        raise QueryError('a query is a JSON array of commands, e.g. [{"GetStatus": {}}]')
    needed = 0
    for i, cmd in enumerate(commands):
        if not isinstance(cmd, dict) or len(cmd) != 1:
            raise QueryError(
                f"command {i + 1}: each element must be an object with exactly one "
                "key, the command name (only one command per element allowed)"
            )
        name, body = next(iter(cmd.items()))
        if name in UNSUPPORTED:
            raise QueryError(UNSUPPORTED[name])
        if name not in HANDLERS:
            raise QueryError(f"{name}: Command not found!")
        needed += int(takes_blob(name, body))
    if blobs is not None and not isinstance(blobs, list | tuple):
        raise QueryError("blobs must be a list of byte strings")
    got = len(blobs or [])
    if needed != got:
        raise QueryError(f"Expected blobs: {needed}. Received blobs: {got}")
    if any(not isinstance(b, bytes | bytearray | memoryview) for b in blobs or []):
        raise QueryError("blobs must be byte strings")
    return commands
