"""Rewriting thinned packs: one policy for every store that keeps blobs in packs.

A pack holds the blobs of one query. Deletes, and queries whose `if_not_found` met existing
objects, leave packs partly dead; a pack whose live blobs fill less than half of it is
rewritten, so deleted bytes do not stay on disk or in object storage for good. The live blobs go
to a new pack; each row moves only if it still names its old blob (a delete or another
compaction may have won); the old pack then goes to the store's trash like a deleted one, so a
read whose snapshot still names it keeps its bytes.

The stores differ only in how they list a pack's rows and move one; they give that through
`PackRows`, and this module holds the policy.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from lensdb.store.base import Staged, WriteRefused
from lensdb.store.blobfiles import is_thin

log = logging.getLogger(__name__)


class PackRows(Protocol):
    """What compaction needs of a transaction."""

    def pack_rows(self, pack: str) -> list[tuple[int, str]]:
        """(object id, blob key) of every row whose blob is in `pack`."""
        ...

    def move_blob(self, object_id: int, old: str, new: str) -> bool:
        """Point the row at `new` if it still names `old`; whether it did."""
        ...

    def pack_in_use(self, pack: str) -> bool: ...

    def trash(self, pack: str) -> None: ...


class PackStore(Protocol):
    """What compaction needs of a store."""

    def read(self) -> AbstractContextManager[Any]: ...

    def write(self, staged: Any = None) -> AbstractContextManager[Any]: ...

    def pack_size(self, pack: str) -> int: ...

    def get_blobs(self, keys: Sequence[str]) -> list[bytes]: ...

    def stage_blobs(self, blobs: list[bytes]) -> Staged: ...


def compact(store: PackStore, packs: Iterable[str]) -> int:
    """Rewrite each thinned pack of `packs`; returns how many were. Never raises: the query
    that led here has committed, and a pack left as it is stays correct, only larger."""
    done = 0
    for pack in sorted(packs):
        try:
            done += compact_pack(store, pack)
        except WriteRefused as e:  # a full disk: tried again when the pack next thins
            log.warning("compacting pack %s put off: %s", pack, e)
        except Exception:
            log.exception("compacting pack %s failed; it stays as it is", pack)
    return done


def compact_pack(store: PackStore, pack: str) -> bool:
    """Rewrite `pack` if it is thin; whether it was."""
    with store.read() as txn:
        live = txn.pack_rows(pack)
        if not live:
            return False
        size = store.pack_size(pack)
        if not is_thin((key for _, key in live), size):
            return False
        datas = store.get_blobs([key for _, key in live])
    staged = store.stage_blobs(datas)
    moved = []
    try:
        with store.write(staged) as wtxn:
            for (oid, old), new in zip(live, staged.keys, strict=True):
                if wtxn.move_blob(oid, old, new):
                    moved.append(new)
            if not wtxn.pack_in_use(pack):
                wtxn.trash(pack)
    except BaseException:
        staged.abort()
        raise
    staged.finish(moved)
    log.info(
        "compacted pack %s (%d bytes): its %d live blob(s) moved to a new pack",
        pack,
        size,
        len(moved),
    )
    return True
