"""Deferred unlinking of pack files, so a read snapshot never loses the bytes of a row it sees.

A read snapshot may hold a row whose pack a later commit retired (its last blob deleted, or its
blobs moved by compaction). Each reader registers the epoch it started in; a pack retired at
epoch E is unlinked once no reader that started before E is still open.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable


class Reclaimer:
    """Reads are the hot path, so entering and leaving take no lock: a token's entry in a dict
    (single dict operations are atomic). A reader that registers late, after a retirement was
    settled, started after that commit, so its snapshot cannot see the retired pack."""

    def __init__(self, unlink: Callable[[Iterable[str]], None]) -> None:
        self._unlink = unlink
        self._lock = threading.Lock()
        self._epoch = 0
        self._tokens = itertools.count()
        self._open: dict[int, int] = {}  # reader token -> epoch it started in
        self._retired: list[tuple[int, list[str]]] = []
        self._done: list[str] = []

    def enter(self) -> int:
        """A reader starts: returns the token `leave` takes."""
        token = next(self._tokens)
        self._open[token] = self._epoch
        return token

    def leave(self, token: int) -> None:
        del self._open[token]
        if self._retired:
            with self._lock:
                ready = self._ready()
            self._settle(ready)

    def retire(self, packs: list[str]) -> None:
        """After the commit that stopped referencing these packs."""
        with self._lock:
            self._epoch += 1
            self._retired.append((self._epoch, packs))
            ready = self._ready()
        self._settle(ready)

    def drain_done(self) -> list[str]:
        """Packs unlinked since the last call (the backend forgets them in its trash list)."""
        if not self._done:  # the common case, on every write: no lock
            return []
        with self._lock:
            done, self._done = self._done, []
        return done

    def _ready(self) -> list[str]:
        oldest = min(self._open.copy().values(), default=self._epoch)
        ready = [p for epoch, packs in self._retired if epoch <= oldest for p in packs]
        self._retired = [(e, p) for e, p in self._retired if e > oldest]
        return ready

    def _settle(self, packs: list[str]) -> None:
        if packs:
            self._unlink(packs)
            with self._lock:
                self._done.extend(packs)
