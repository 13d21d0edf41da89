"""The login limit's arithmetic, on a clock the test moves (the server test is in
tests/reliability/test_hostile_access.py)."""

from __future__ import annotations

import pytest

from lensdb.auth.throttle import LoginThrottle, ThrottleLimits, TooManyAttempts


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_the_rate_per_address() -> None:
    clock = Clock()
    t = LoginThrottle(ThrottleLimits(burst=3, per_minute=6), clock)  # one every 10 s
    for i in range(3):
        t.check(f"user{i}", "10.0.0.1")
        t.failed(f"user{i}", "10.0.0.1")
    with pytest.raises(TooManyAttempts, match="from this address: try again in 10 s"):
        t.check("someone", "10.0.0.1")
    t.check("someone", "10.0.0.2")  # another address is not affected
    clock.now += 10
    t.check("someone", "10.0.0.1")  # drained by one
    t.failed("someone", "10.0.0.1")
    with pytest.raises(TooManyAttempts):
        t.check("someone", "10.0.0.1")
    assert t.refused == 2


def test_a_user_under_attack_still_hears_new_addresses() -> None:
    clock = Clock()
    t = LoginThrottle(ThrottleLimits(burst=3, per_minute=6), clock)
    for i in range(3):  # three addresses, one guess each: the user's bucket is full
        t.check("admin", f"10.0.1.{i}")
        t.failed("admin", f"10.0.1.{i}")
    with pytest.raises(TooManyAttempts, match="for this user"):
        t.check("admin", "10.0.1.0")  # a guesser again
    t.check("admin", "10.0.9.9")  # the owner, elsewhere: checked
    with pytest.raises(TooManyAttempts, match="for this user"):
        t.check("admin", None)  # no address known: the user's limit applies to all


def test_zero_per_minute_turns_it_off() -> None:
    t = LoginThrottle(ThrottleLimits(burst=1, per_minute=0))
    for _ in range(100):
        t.check("admin", "10.0.0.1")
        t.failed("admin", "10.0.0.1")
    assert t.refused == 0
