"""A sharded folder of blob files whose writes follow the database's transactions.

A new blob is written to `pending/<key>` before the transaction commits, and moved to
`<k0k1>/<k2k3>/<key>` after it. Recovery on open moves every pending file that a committed row
references into place and deletes the rest, so a crash at any point (kill -9 included) leaves
neither a row without its file nor a file without its row. Deleted blobs are unlinked after the
deleting transaction commits; the backend keeps their keys in a trash list until then.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path


class BlobFolder:
    def __init__(self, root: Path, *, durable: bool = False) -> None:
        self.root = root
        self.pending = root / "pending"
        self.pending.mkdir(parents=True, exist_ok=True)
        # durable=False survives a killed process (the OS keeps written pages); durable=True
        # also survives power loss, at the price of an fsync per blob.
        self.durable = durable

    def path(self, key: str) -> Path:
        return self.root / key[:2] / key[2:4] / key

    def stage(self, data: bytes) -> str:
        key = uuid.uuid4().hex
        path = self.pending / key
        with open(path, "wb") as f:
            f.write(data)
            if self.durable:
                f.flush()
                os.fsync(f.fileno())
        return key

    def sync_pending(self) -> None:
        """Make staged names durable before the transaction that references them commits."""
        if self.durable:
            fd = os.open(self.pending, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def publish(self, keys: Iterable[str]) -> None:
        for key in keys:
            dest = self.path(key)
            try:
                os.replace(self.pending / key, dest)
            except FileNotFoundError:
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(self.pending / key, dest)

    def discard(self, keys: Iterable[str]) -> None:
        for key in keys:
            (self.pending / key).unlink(missing_ok=True)

    def unlink(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.path(key).unlink(missing_ok=True)

    def read(self, key: str) -> bytes:
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError:
            # Committed but not yet moved out of pending/ by the writer.
            return (self.pending / key).read_bytes()

    def recover(self, referenced: Callable[[list[str]], set[str]]) -> tuple[int, int]:
        """Finish or undo what a crash interrupted. Returns (published, discarded)."""
        keys = [p.name for p in self.pending.iterdir() if p.is_file()]
        if not keys:
            return 0, 0
        keep = referenced(keys)
        self.publish(k for k in keys if k in keep)
        self.discard(k for k in keys if k not in keep)
        return len(keep), len(keys) - len(keep)
