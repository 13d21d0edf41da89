"""Sustained mixed load from real SDK clients, CI-sized (issue 12; the full 64 clients x 60 s
run is `bench/load.py`).

Half the clients use TLS, half plain TCP, and every fourth talks REST. Each runs the mix of
`reliability.workload.LoadWorker` (finds with constraints, if_not_found adds and re-adds, an
image with two boxes in one query, finds with blobs, deletes of its own adds) and checks every
answer. Pass: no error, no wrong answer, every worker's objects exactly what it was told was
stored, and the server's open file descriptors back to where they were once the clients leave.
"""

from __future__ import annotations

import os
import time

import pytest

from reliability.workload import ProcSampler, fd_count, rss_bytes, run_load, verify_load

SIZES = {"sqlite": (16, 10.0), "postgres-s3": (8, 6.0)}  # clients, seconds


@pytest.fixture(params=["sqlite", "postgres-s3"])
def backend_server(request, lensdb_server_factory):
    if request.param == "sqlite":
        return request.param, lensdb_server_factory()
    cluster = request.getfixturevalue("postgres_cluster")
    s3 = request.getfixturevalue("moto_server")
    server = lensdb_server_factory(
        url=cluster.new_database(), blobs=f"s3://{s3.new_bucket()}/lensdb", env=s3.env()
    )
    return request.param, server


def connectors(server, n: int) -> list:
    def make(i: int):
        if i % 4 == 3:
            return lambda: server.rest_connector()
        return lambda: server.connector(use_ssl=i % 2 == 0, retry_max_attempts=1)

    return [make(i) for i in range(n)]


def settled_fds(pid: int, target: int | None) -> int:
    """The descriptor count once closing connections are gone (down to `target`, or steady)."""
    deadline = time.monotonic() + 15
    last = fd_count(pid)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = fd_count(pid)
        if (target is not None and now <= target) or (target is None and now == last):
            return now
        last = now
    return last


def open_files(pid: int) -> dict[str, int]:
    """What the descriptors point at, counted (for a failure message)."""
    kinds: dict[str, int] = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        kind = target.split(":")[0] if ":" in target else os.path.basename(target)
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


def test_mixed_load_has_no_errors_and_leaks_no_descriptors(backend_server) -> None:
    backend, server = backend_server
    clients, seconds = SIZES[backend]
    pid = server.proc.pid
    # Warm-up: every worker thread of the server opens its own SQLite reader (3 descriptors:
    # the database, its WAL and shared memory) on its first query, and keeps it.
    warm, _ = run_load(connectors(server, clients), 3.0, first=1000)
    assert warm.errors == [], warm.errors[:5]
    fds_before = settled_fds(pid, None)

    with ProcSampler(pid) as sampler:
        stats, workers = run_load(connectors(server, clients), seconds)
    print(f"{backend}, {clients} clients: {stats.summary()}")
    assert stats.queries > clients * 5, stats.summary()
    assert stats.errors == [], stats.errors[:5]
    assert stats.wrong == [], stats.wrong[:5]
    assert set(stats.by_op) >= {"add", "add_again", "find", "image", "find_blobs", "delete"}
    assert verify_load(server.connector(), workers) == []

    # Clients gone: the server's descriptors come back to the baseline (each client held one
    # socket; a few more may linger for a second while the loop closes them).
    after = settled_fds(pid, fds_before + 2)
    assert after <= fds_before + 2, (fds_before, after, open_files(pid))
    peak_fds = max(s[2] for s in sampler.samples)
    assert peak_fds <= fds_before + clients + 20, (fds_before, peak_fds)
    print(f"fds {fds_before} -> peak {peak_fds} -> {fd_count(pid)}; rss {rss_bytes(pid) >> 20} MiB")
