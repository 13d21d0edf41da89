"""A sharded folder of blob files whose writes follow the database's transactions.

A query's new blobs are written *before* its transaction starts, outside the writer lock, so
concurrent writers overlap their file writes and only the rows are serialised. First their
keys go into an intent file `intents/<id>.log`, locked (flock) for as long as its writer lives;
then the files go straight to their final place `<k0k1>/<key>`. After the transaction commits,
the files it did not use are deleted and the intent file is removed.
Recovery on open takes every intent file whose lock it can get (its writer is gone) and
deletes the listed files that no committed row references. So a crash at any point (kill -9
included) leaves neither a row without its file nor a file without its row, and another
process opening the folder never touches a live writer's blobs.
Deleted blobs are unlinked after the deleting transaction commits; the backend keeps their
keys in a trash list until then.
"""

from __future__ import annotations

import fcntl
import os
import random
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

# File creation is latency-bound on many disks (measured here: 20 µs to 0.6 ms per file, varying
# by the minute). A batch is written inline while files are quick to create; once they are slow,
# the rest goes to writer threads, whose concurrency hides most of the latency (and whose
# hand-off would only cost time on a fast disk).
_WRITERS = ThreadPoolExecutor(max_workers=16, thread_name_prefix="lensdb-blob")
_PROBE = 4  # files written inline before judging the disk
_SLOW = 100e-6  # seconds per file above which the rest is written concurrently


class StagedBlobs:
    """Blob files written ahead of the transaction that will reference them."""

    def __init__(self, folder: BlobFolder, keys: list[str], intent: Path | None,
                 fd: int | None) -> None:
        self.folder = folder
        self.keys = keys
        self._intent = intent
        self._fd = fd

    def finish(self, used: Iterable[str]) -> None:
        """The transaction committed: drop the files it did not reference, forget the intent."""
        keep = set(used)
        self.folder.unlink(k for k in self.keys if k not in keep)
        self._release()

    def abort(self) -> None:
        """The transaction rolled back: drop every file."""
        self.folder.unlink(self.keys)
        self._release()

    def _release(self) -> None:
        if self._intent is not None:
            self._intent.unlink(missing_ok=True)
            self._intent = None
        if self._fd is not None:
            os.close(self._fd)  # closing releases the lock
            self._fd = None


# Blob keys: 128 random bits. A generator seeded from the OS once per process is as unique as
# uuid4 here and several times cheaper (uuid4 makes a system call and an object per key).
_keys = random.Random(os.urandom(32))
# A forked child must not replay its parent's keys into the same folder.
os.register_at_fork(after_in_child=lambda: _keys.seed(os.urandom(32)))


def new_key() -> str:
    return f"{_keys.getrandbits(128):032x}"


class BlobFolder:
    def __init__(self, root: Path, *, durable: bool = False) -> None:
        self.root = root
        self.intents = root / "intents"
        self.intents.mkdir(parents=True, exist_ok=True)
        # 256 shards made once: creating folders on the write path costs more than the writes.
        for i in range(256):
            (root / f"{i:02x}").mkdir(exist_ok=True)
        # durable=False survives a killed process (the OS keeps written pages); durable=True
        # also survives power loss, at the price of fsyncs per blob.
        self.durable = durable

    def path(self, key: str) -> Path:
        return self.root / key[:2] / key

    def stage(self, blobs: list[bytes]) -> StagedBlobs:
        """Write blobs for a transaction about to run; they are garbage until it commits."""
        if not blobs:
            return StagedBlobs(self, [], None, None)
        keys = [new_key() for _ in blobs]
        name = new_key()
        # Locked under a hidden name, then renamed: recovery never sees an unlocked live intent.
        tmp = self.intents / f".{name}"
        fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, "\n".join(keys).encode() + b"\n")
        if self.durable:
            os.fsync(fd)
        intent = self.intents / f"{name}.log"
        os.replace(tmp, intent)
        staged = StagedBlobs(self, keys, intent, fd)
        try:
            self._write_all(keys, blobs)
        except BaseException:
            staged.abort()
            raise
        return staged

    def _write_all(self, keys: list[str], blobs: list[bytes]) -> None:
        start = time.perf_counter()
        for i, (key, data) in enumerate(zip(keys, blobs, strict=True)):
            if i >= _PROBE and (time.perf_counter() - start) / i > _SLOW:
                futures = [_WRITERS.submit(self._write, k, d)
                           for k, d in zip(keys[i:], blobs[i:], strict=True)]
                wait(futures)  # all settled before any abort, so no file appears after it
                for f in futures:
                    f.result()
                return
            self._write(key, data)

    def _write(self, key: str, data: bytes) -> None:
        with open(self.path(key), "wb") as f:
            f.write(data)
            if self.durable:
                f.flush()
                os.fsync(f.fileno())

    def unlink(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.path(key).unlink(missing_ok=True)

    def read(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def recover(self, referenced: Callable[[list[str]], set[str]]) -> int:
        """Delete the files of writers that died before finishing. Returns how many."""
        removed = 0
        for intent in self.intents.iterdir():
            try:
                fd = os.open(intent, os.O_RDONLY)
            except FileNotFoundError:
                continue  # its writer finished meanwhile
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live writer (maybe another process) still owns it
                keys = [k for k in intent.read_text().split() if len(k) == 32]
                keep = referenced(keys) if keys else set()
                orphans = [k for k in keys if k not in keep]
                self.unlink(orphans)
                removed += len(orphans)
                intent.unlink(missing_ok=True)
            finally:
                os.close(fd)
        return removed

    def close(self) -> None:
        pass
