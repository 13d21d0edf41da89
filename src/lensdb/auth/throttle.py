"""Slowing password and token guessing: failed logins counted per address and per user.

Each key holds a leaky bucket of failures: every failure adds one, and the level drains at
`per_minute / 60` a second. A full bucket refuses the next attempt at once, before any hash is
computed, so a refused guess costs microseconds instead of an argon2 hash (64 MiB, ~0.1 s).

- **Per address**: one client guessing any account is refused once its bucket is full.
- **Per user**: many addresses guessing one account are refused too, except an address that has
  not failed for this user lately. The account's owner, at their own address, still gets in with
  the right password while the account is under attack; each attacking address has spent its
  try. (Behind a reverse proxy every client shares the proxy's address: put the limit there.)

Measured with bench/login_rate.py: from 7 wrong-password attempts a second without the limit to
the bucket's rate (10 a minute by default) once the burst is spent.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

# Buckets kept at most; past this, drained ones are dropped (a spray of addresses or usernames
# cannot grow memory without bound).
MAX_KEYS = 100_000
# An address that failed for a user stays marked as one of its guessers this long.
GUESSER_MEMORY_SECONDS = 600.0


@dataclass(frozen=True)
class ThrottleLimits:
    """Failures allowed at once (burst) and refilled per minute; per_minute 0 turns it off."""

    burst: int = 10
    per_minute: float = 10.0

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0


class TooManyAttempts(Exception):
    """Refused without checking: too many recent failures."""

    def __init__(self, retry_after: float, scope: str) -> None:
        self.retry_after = max(1, math.ceil(retry_after))
        self.scope = scope
        super().__init__(
            f"Too many failed logins {scope}: try again in {self.retry_after} s "
            "(failed logins are limited per address and per user)"
        )


class _Buckets:
    def __init__(self, capacity: float, drain_per_second: float) -> None:
        self.capacity = capacity
        self.drain = drain_per_second
        self._levels: dict[object, tuple[float, float]] = {}

    def level(self, key: object, now: float) -> float:
        entry = self._levels.get(key)
        if entry is None:
            return 0.0
        level, at = entry
        return max(0.0, level - (now - at) * self.drain)

    def add(self, key: object, now: float) -> None:
        if len(self._levels) >= MAX_KEYS:
            self._levels = {k: v for k, v in self._levels.items() if self.level(k, now) > 0}
            if len(self._levels) >= MAX_KEYS:  # all busy: forget the oldest half
                keep = sorted(self._levels.items(), key=lambda kv: kv[1][1])[MAX_KEYS // 2 :]
                self._levels = dict(keep)
        self._levels[key] = (min(self.capacity + 1, self.level(key, now) + 1), now)

    def wait(self, key: object, now: float) -> float:
        """Seconds until the bucket has room again (0 when it has room now)."""
        over = self.level(key, now) - self.capacity + 1
        return over / self.drain if over > 0 else 0.0


class LoginThrottle:
    """Thread-safe; `check` before verifying a credential, `failed` after a wrong one."""

    def __init__(
        self, limits: ThrottleLimits | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limits = limits or ThrottleLimits()
        self._clock = clock
        self._lock = threading.Lock()
        drain = self.limits.per_minute / 60.0
        self._address = _Buckets(self.limits.burst, drain)
        self._user = _Buckets(self.limits.burst, drain)
        self._guessers = _Buckets(1, 1.0 / GUESSER_MEMORY_SECONDS)
        self.refused = 0

    def check(self, username: str, address: str | None) -> None:
        """Raise TooManyAttempts when this attempt must not be checked at all."""
        if not self.limits.enabled:
            return
        now = self._clock()
        with self._lock:
            if address is not None:
                wait = self._address.wait(address, now)
                if wait > 0:
                    self.refused += 1
                    raise TooManyAttempts(wait, "from this address")
            wait = self._user.wait(username, now)
            if wait > 0 and (address is None or self._guessers.level((username, address), now)):
                self.refused += 1
                raise TooManyAttempts(wait, "for this user")

    def failed(self, username: str, address: str | None) -> None:
        if not self.limits.enabled:
            return
        now = self._clock()
        with self._lock:
            self._user.add(username, now)
            if address is not None:
                self._address.add(address, now)
                self._guessers.add((username, address), now)
