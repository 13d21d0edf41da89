"""Copy a dataset between backends (folder <-> PostgreSQL + S3), resumably, then verify it.

Only the `Store` interface is used, so any backend copies to any other. Objects and then
connections go over in id order, in batches; each batch is one destination transaction (its
blobs staged first, as a query's are), and rows keep their ids, so `_uniqueid`s and
connections stay valid. An interrupted copy resumes where it stopped: the destination then
holds exactly the source's first k objects (and connections), which is checked, not assumed.
At the end the counts per class and a SHA-256 of every blob are compared on both sides.
The source should not be written to meanwhile (a server may read from it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from lensdb.store.base import Selection, SortKey, Store, StoreError

BATCH = 500
_BY_ID = (SortKey("_uniqueid"),)


class CopyError(StoreError):
    """The destination cannot take (or resume) this copy; the text says why."""


@dataclass
class CopyReport:
    objects: int = 0  # copied by this run
    connections: int = 0
    resumed_at: tuple[int, int] = (0, 0)  # objects, connections already in the destination
    mismatches: list[str] = field(default_factory=list)  # verification failures

    @property
    def ok(self) -> bool:
        return not self.mismatches


Progress = Callable[[str, int, int], None]  # (phase, done, total)


def copy_dataset(
    src: Store, dst: Store, *, batch: int = BATCH, progress: Progress | None = None
) -> CopyReport:
    report = CopyReport()
    with src.read() as s:
        totals = (s.count_objects(Selection()), s.count_connections(Selection()))
        indexes = s.indexes()
    with dst.write() as d:
        for kind, cls, key in sorted(indexes - d.indexes()):
            d.create_index(kind, cls, key)
    with dst.read() as d:
        have = (d.count_objects(Selection()), d.count_connections(Selection()))
    report.resumed_at = have
    _check_prefix(src, dst, have)
    report.objects = _copy_objects(src, dst, have[0], totals[0], batch, progress)
    report.connections = _copy_connections(src, dst, have[1], totals[1], batch, progress)
    report.mismatches = verify(src, dst, progress)
    return report


def _check_prefix(src: Store, dst: Store, have: tuple[int, int]) -> None:
    """The destination must hold exactly the source's first objects and connections."""
    for n, what in zip(have, ("objects", "connections"), strict=True):
        if not n:
            continue
        sel = Selection(sort=_BY_ID, offset=n - 1, limit=1)
        last = Selection(sort=(SortKey("_uniqueid", descending=True),), limit=1)
        with src.read() as s, dst.read() as d:
            fetch = (
                (lambda t, q: t.find_objects(q))
                if what == "objects"
                else (lambda t, q: t.find_connections(q))
            )
            theirs, ours = fetch(s, sel), fetch(d, last)
        if not theirs or not ours or theirs[0].id != ours[0].id:
            raise CopyError(
                f"the destination already holds {n} {what} that are not the "
                f"source's first {n}: copy into an empty destination"
            )


def _pages(store: Store, what: str, start: int, batch: int) -> Iterator[list]:
    offset = start
    while True:
        sel = Selection(sort=_BY_ID, offset=offset, limit=batch)
        with store.read() as t:
            rows = t.find_objects(sel) if what == "objects" else t.find_connections(sel)
            blobs = (
                store.get_blobs([r.blob for r in rows if r.blob is not None])
                if what == "objects"
                else []
            )
        if not rows:
            return
        yield rows, blobs
        offset += len(rows)


def _copy_objects(
    src: Store, dst: Store, start: int, total: int, batch: int, progress: Progress | None
) -> int:
    done = 0
    for rows, blobs in _pages(src, "objects", start, batch):
        staged = dst.stage_blobs(blobs)
        keys = iter(staged.keys)
        try:
            with dst.write(staged) as d:
                for r in rows:
                    d.add_object(
                        r.cls, r.props, next(keys) if r.blob is not None else None, id=r.id
                    )
        except BaseException:
            staged.abort()
            raise
        staged.finish(staged.keys)
        done += len(rows)
        if progress:
            progress("objects", start + done, total)
    return done


def _copy_connections(
    src: Store, dst: Store, start: int, total: int, batch: int, progress: Progress | None
) -> int:
    done = 0
    for rows, _ in _pages(src, "connections", start, batch):
        with dst.write() as d:
            for c in rows:
                d.add_connection(c.cls, c.src, c.dst, c.props, id=c.id)
        done += len(rows)
        if progress:
            progress("connections", start + done, total)
    return done


def verify(src: Store, dst: Store, progress: Progress | None = None) -> list[str]:
    """Counts per class of objects and connections, and every blob's SHA-256, on both sides."""
    out = []
    with src.read() as s, dst.read() as d:
        for kind in ("entity", "connection"):
            a = {c: st.matched for c, st in s.schema(kind).items()}
            b = {c: st.matched for c, st in d.schema(kind).items()}
            for cls in sorted(a.keys() | b.keys()):
                if a.get(cls, 0) != b.get(cls, 0):
                    out.append(
                        f"{kind} class {cls}: {a.get(cls, 0)} in the source, "
                        f"{b.get(cls, 0)} in the destination"
                    )
    checked = 0
    for (rows_a, blobs_a), (rows_b, blobs_b) in zip(
        _pages(src, "objects", 0, BATCH), _pages(dst, "objects", 0, BATCH), strict=False
    ):  # counts compared above
        if [(r.id, r.blob is None) for r in rows_a] != [(r.id, r.blob is None) for r in rows_b]:
            out.append("the objects differ (ids or blobs): was the source written to?")
            break
        for r, x, y in zip(
            [r for r in rows_a if r.blob is not None], blobs_a, blobs_b, strict=True
        ):
            if hashlib.sha256(x).digest() != hashlib.sha256(y).digest():
                out.append(f"blob of object {r.id}: checksums differ")
        checked += len(rows_a)
        if progress:
            progress("verify", checked, checked)
    return out
