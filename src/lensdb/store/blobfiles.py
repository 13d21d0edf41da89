"""A sharded folder of blob files whose writes follow the database's transactions.

Before a blob file is created, its key is appended to `intent.log`; the file is then written
straight to its final place `<k0k1>/<key>`. After the transaction commits the log is emptied.
Recovery on open reads the log and deletes every listed file that no committed row references,
so a crash at any point (kill -9 included) leaves neither a row without its file nor a file
without its row, and the write path costs one file write per blob, no rename.
Deleted blobs are unlinked after the deleting transaction commits; the backend keeps their
keys in a trash list until then.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path


class BlobFolder:
    def __init__(self, root: Path, *, durable: bool = False) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        # 256 shards made once: creating folders on the write path costs more than the writes.
        for i in range(256):
            (root / f"{i:02x}").mkdir(exist_ok=True)
        self.intent_path = root / "intent.log"
        self._intent = open(self.intent_path, "ab")  # noqa: SIM115 - kept open for appends
        # durable=False survives a killed process (the OS keeps written pages); durable=True
        # also survives power loss, at the price of fsyncs per blob.
        self.durable = durable

    def path(self, key: str) -> Path:
        return self.root / key[:2] / key

    def stage(self, data: bytes) -> str:
        """Write a blob for the running transaction; it is garbage until that commits."""
        key = uuid.uuid4().hex
        self._intent.write(key.encode() + b"\n")
        self._intent.flush()
        if self.durable:
            os.fsync(self._intent.fileno())
        with open(self.path(key), "wb") as f:
            f.write(data)
            if self.durable:
                f.flush()
                os.fsync(f.fileno())
        return key

    def committed(self) -> None:
        """The transaction that wrote the staged blobs committed: forget the intents."""
        self._intent.truncate(0)
        self._intent.seek(0)

    def discard(self, keys: Iterable[str]) -> None:
        self.unlink(keys)
        self.committed()

    def unlink(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.path(key).unlink(missing_ok=True)

    def read(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def recover(self, referenced: Callable[[list[str]], set[str]]) -> int:
        """Delete the files of transactions that never committed. Returns how many."""
        keys = [k for k in self.intent_path.read_text().split() if len(k) == 32]
        if not keys:
            return 0
        keep = referenced(keys)
        orphans = [k for k in keys if k not in keep]
        self.unlink(orphans)
        self.committed()
        return len(orphans)

    def close(self) -> None:
        self._intent.close()
