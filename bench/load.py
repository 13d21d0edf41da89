"""Sustained mixed load (issue 12): 64 aperturedb SDK clients for 60 s against `lensdb serve`.

Half the clients use TLS and half plain TCP; every fourth talks REST (`ConnectorRest`). Each
runs the checked mix of tests/reliability/workload.py: finds with constraints, if_not_found
adds (and re-adds, which must answer "exists"), an image with two boxes in one query, finds
with blobs (bytes compared), deletes of its own adds. The clients run in several processes so
the client side's GIL does not set the pace.

Prints queries/s, p50/p99, errors and wrong answers, and the server's RSS and open file
descriptors sampled from /proc every second: after warm-up (the first `--warmup` seconds, while
every worker thread opens its SQLite reader) both must stay flat.

Usage: python bench/load.py [--clients 64] [--seconds 60] [--procs 4] [--backend sqlite|postgres]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from conftest import LensdbServer  # noqa: E402
from reliability.workload import (  # noqa: E402
    ProcSampler,
    Stats,
    create_indexes,
    run_load,
    verify_load,
)


def make_connectors(server: LensdbServer, numbers: list[int]) -> list:
    def make(i: int):
        if i % 4 == 3:
            return lambda: server.rest_connector()
        return lambda: server.connector(use_ssl=i % 2 == 0, retry_max_attempts=1)

    return [make(i) for i in numbers]


def client_process(
    server: LensdbServer, numbers: list[int], seconds: float, ready, go, out
) -> None:
    def on_start() -> None:
        ready.put(len(numbers))
        go.wait()

    stats, workers = run_load(
        make_connectors(server, numbers), seconds, on_start=on_start, numbers=numbers
    )
    problems = verify_load(server.connector(), workers) if workers else []
    out.put(
        {
            "latencies": stats.latencies,
            "errors": stats.errors,
            "wrong": stats.wrong + problems,
            "by_op": stats.by_op,
        }
    )


def pct(xs: list[float], p: float) -> float:
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))] if xs else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--procs", type=int, default=4)
    ap.add_argument("--warmup", type=float, default=10.0)
    ap.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="lensdb-load-"))
    cleanup = []
    if args.backend == "postgres":
        from backends import MotoServer, PostgresCluster

        cluster, s3 = PostgresCluster().start(), MotoServer().start()
        cleanup += [cluster.stop, s3.stop]
        server = LensdbServer(
            tmp / "state",
            url=cluster.new_database(),
            blobs=f"s3://{s3.new_bucket()}/lensdb",
            env=s3.env(),
        ).start()
    else:
        server = LensdbServer(tmp / "data").start()
    create_indexes(server.connector())
    ctx = mp.get_context("fork")
    ready, out, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    slices = [list(range(p, args.clients, args.procs)) for p in range(args.procs)]
    procs = [
        ctx.Process(target=client_process, args=(server, s, args.seconds, ready, go, out))
        for s in slices
        if s
    ]
    try:
        for p in procs:
            p.start()
        for _ in procs:
            ready.get(timeout=600)  # every client logged in
        pid = server.proc.pid
        with ProcSampler(pid, every=1.0) as sampler:
            t0 = time.monotonic()
            go.set()
            results = [out.get(timeout=args.seconds + 600) for _ in procs]
            t1 = time.monotonic()
        for p in procs:
            p.join(60)
    finally:
        server.stop()
        for stop in cleanup:
            stop()

    stats = Stats()
    for r in results:
        stats.latencies += r["latencies"]
        stats.errors += r["errors"]
        stats.wrong += r["wrong"]
        for k, v in r["by_op"].items():
            stats.by_op[k] = stats.by_op.get(k, 0) + v
    stats.started, stats.ended = t0, t0 + args.seconds
    lat = sorted(stats.latencies)
    print(
        f"{args.backend}: {args.clients} clients ({args.procs} processes) x {args.seconds:g} s, "
        f"half TLS half plain, every 4th REST"
    )
    print(
        f"  {len(lat):,} queries, {len(lat) / args.seconds:,.0f} queries/s; "
        f"p50 {pct(lat, 50) * 1e3:.1f} ms, p99 {pct(lat, 99) * 1e3:.1f} ms, "
        f"max {lat[-1] * 1e3 if lat else 0:.0f} ms"
    )
    print(f"  errors {len(stats.errors)}, wrong answers {len(stats.wrong)}")
    print(f"  mix {dict(sorted(stats.by_op.items()))}")
    for e in (stats.errors + stats.wrong)[:5]:
        print("   ", e)
    timeline = []
    for k in range(0, int(t1 - t0) + 1, 10):
        near = sampler.between(t0 + k - 1, t0 + k + 1)
        if near:
            _, rss, fds, anon = near[0]
            timeline.append(f"{k}s {rss / 2**20:.0f}/{anon / 2**20:.0f} MiB {fds} fds")
    print("  server every 10 s (RSS/anonymous, open fds):", ", ".join(timeline))
    # Until the clients stop (after that they log in again to verify: argon2 takes 64 MiB each).
    steady = sampler.between(t0 + args.warmup, t0 + args.seconds)
    if steady:
        rss = [s[1] / 2**20 for s in steady]
        fds = [s[2] for s in steady]
        anon = [s[3] / 2**20 for s in steady]
        third = max(1, len(steady) // 3)
        print(
            f"  server after {args.warmup:g} s warm-up: RSS {rss[0]:.0f} -> {rss[-1]:.0f} MiB "
            f"(min {min(rss):.0f}, max {max(rss):.0f}; first third median "
            f"{statistics.median(rss[:third]):.0f}, last third {statistics.median(rss[-third:]):.0f}); "
            f"open fds {fds[0]} -> {fds[-1]} (min {min(fds)}, max {max(fds)})"
        )
        print(
            f"  of which anonymous (heap; the rest is the database file, mapped, which grows "
            f"with the data the load adds): {anon[0]:.0f} -> "
            f"{anon[-1]:.0f} MiB (max {max(anon):.0f})"
        )
    sys.exit(1 if stats.errors or stats.wrong else 0)


if __name__ == "__main__":
    main()
