"""Soak (issue 12): the mixed load for N minutes while faults are injected, then an audit.

While `--clients` SDK clients run the checked mix of tests/reliability/workload.py and
`--ingesters` more ingest image + boxes + entity + connection transactions (recording each
acknowledged one), a fault is injected every `--fault-every` seconds, in turn:
  kill     SIGKILL of the server at a random moment, then a restart
  idle     a burst of `--idle` connections that send nothing, held 10 s, then closed
  garbage  500 malformed frames (random lengths, truncated frames, huge length prefixes)
  full     with --tmpfs: the data folder's file system filled to the last byte for 5 s
Printed: per minute, queries/s, p50/p99 and errors (errors are expected only while a fault
lasts: a killed server answers nothing); then what was acknowledged and what survived (lost and
partial must be 0), `lensdb check`, and the server's memory after warm-up and at the end.

Usage: python bench/soak.py --minutes 10 [--clients 16] [--ingesters 4] [--fault-every 30]
                            [--tmpfs]  (needs root: the data folder on a 1 GB tmpfs)
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from conftest import LensdbServer  # noqa: E402
from reliability.workload import (  # noqa: E402
    Ledger,
    LoadWorker,
    Stats,
    check_ingest,
    create_indexes,
    ingest_until_error,
    rss_bytes,
    verify_load,
)


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))] if xs else 0.0


class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rnd = random.Random(args.seed)
        self.tmp = Path(tempfile.mkdtemp(prefix="lensdb-soak-"))
        self.mount: Path | None = None
        data = self.tmp / "data"
        if args.tmpfs:
            self.mount = self.tmp / "disk"
            self.mount.mkdir()
            subprocess.run(
                ["mount", "-t", "tmpfs", "-o", "size=1g", "tmpfs", str(self.mount)], check=True
            )
            data = self.mount
        self.server = LensdbServer(data)
        self.stats = Stats()
        self.ledger = Ledger()
        self.stop = threading.Event()
        self.faults: list[tuple[float, float, str]] = []  # (start, end, kind)
        self.memory: list[tuple[str, int, int]] = []  # (when, RSS, anonymous RSS)

    # -- clients -------------------------------------------------------------------------
    def connect(self, i: int):
        if i % 4 == 3:
            return self.server.rest_connector()
        return self.server.connector(use_ssl=i % 2 == 0, retry_max_attempts=1)

    def load(self, worker: LoadWorker) -> None:
        while not self.stop.is_set():
            try:
                db = worker.login()
            except Exception:
                time.sleep(0.5)
                continue
            worker.run(db, float("inf"), self.stop)

    def ingest(self, t: int) -> None:
        rounds = 0
        while not self.stop.is_set():
            rounds += 1
            ingest_until_error(
                lambda: self.server.connector(use_ssl=False, retry_max_attempts=1),
                self.ledger,
                f"soak{t}r{rounds}",
                self.stop,
            )
            time.sleep(0.3)

    # -- faults --------------------------------------------------------------------------
    def kill(self) -> None:
        time.sleep(self.rnd.uniform(0, 3))
        pid = self.server.proc.pid
        self.memory.append(("before kill", rss_bytes(pid), rss_bytes(pid, "RssAnon")))
        self.server.stop(signal.SIGKILL)
        self.server.start()

    def idle(self) -> None:
        socks = []
        for _ in range(self.args.idle):
            try:
                socks.append(socket.create_connection(("127.0.0.1", self.server.port), timeout=5))
            except OSError:
                break
        time.sleep(10)
        for s in socks:
            s.close()

    def garbage(self) -> None:
        for i in range(500):
            try:
                with socket.create_connection(("127.0.0.1", self.server.port), timeout=5) as s:
                    kind = i % 4
                    if kind == 0:  # a hello, then a frame that is not a protobuf
                        s.sendall(struct.pack("<III", 8, 1, 1))
                        s.sendall(struct.pack("<I", 64) + os.urandom(64))
                    elif kind == 1:  # a huge length prefix
                        s.sendall(struct.pack("<I", 0xFFFFFFF0) + b"x" * 16)
                    elif kind == 2:  # a truncated frame
                        s.sendall(struct.pack("<III", 8, 1, 1) + struct.pack("<I", 1000) + b"y")
                    else:  # random bytes
                        s.sendall(os.urandom(self.rnd.randrange(1, 200)))
                    s.settimeout(0.2)
                    try:
                        s.recv(1024)
                    except OSError:
                        pass
            except OSError:
                pass

    def full(self) -> None:
        assert self.mount is not None
        filler = self.mount / "filler"
        with open(filler, "wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"\0" * (1 << 20))
            except OSError:
                pass
        time.sleep(5)
        filler.unlink()

    def faulting(self) -> None:
        kinds = ["kill", "idle", "garbage"] + (["full"] if self.mount else [])
        n = 0
        while not self.stop.wait(self.args.fault_every):
            kind = kinds[n % len(kinds)]
            n += 1
            start = time.monotonic()
            getattr(self, kind)()
            self.faults.append((start, time.monotonic(), kind))
            print(f"  fault {n}: {kind} ({time.monotonic() - start:.1f} s)", flush=True)

    # -- the run -------------------------------------------------------------------------
    def run(self) -> int:
        args = self.args
        self.server.start()
        create_indexes(self.server.connector())
        workers = [
            LoadWorker(i, lambda i=i: self.connect(i), self.stats) for i in range(args.clients)
        ]
        threads = [threading.Thread(target=self.load, args=(w,), daemon=True) for w in workers]
        threads += [
            threading.Thread(target=self.ingest, args=(t,), daemon=True)
            for t in range(args.ingesters)
        ]
        t0 = time.monotonic()
        self.stats.started = t0
        for t in threads:
            t.start()
        time.sleep(min(20.0, args.minutes * 60 / 4))
        pid = self.server.proc.pid
        self.memory.append(("after warm-up", rss_bytes(pid), rss_bytes(pid, "RssAnon")))
        faulter = threading.Thread(target=self.faulting, daemon=True)
        faulter.start()
        end = t0 + args.minutes * 60
        while time.monotonic() < end:
            time.sleep(1)
        self.stop.set()
        faulter.join()  # a fault in progress ends first (a killed server is started again)
        for t in threads:
            t.join(30)
        self.stats.ended = time.monotonic()
        if not self.server.running():
            self.server.start()
        pid = self.server.proc.pid
        self.memory.append(("at the end", rss_bytes(pid), rss_bytes(pid, "RssAnon")))
        return self.report(workers, t0)

    def in_fault(self, t: float) -> bool:
        return any(a - 1 <= t <= b + 5 for a, b, _ in self.faults)

    def report(self, workers: list[LoadWorker], t0: float) -> int:
        s = self.stats
        print(f"\nper minute ({self.args.clients} load clients, {self.args.ingesters} ingesters):")
        minutes = int((s.ended - t0) // 60) + 1
        for m in range(minutes):
            a, b = t0 + 60 * m, t0 + 60 * (m + 1)
            lat = [x for x, t in zip(s.latencies, s.times, strict=True) if a <= t < b]
            errs = [t for t in s.error_times if a <= t < b]
            faults = [k for f0, _, k in self.faults if a <= f0 < b]
            if not lat and not errs:
                continue
            print(
                f"  minute {m + 1}: {len(lat) / 60:,.0f} q/s, p50 {pct(lat, 50) * 1e3:.1f} ms, "
                f"p99 {pct(lat, 99) * 1e3:.1f} ms, errors {len(errs)} "
                f"(outside faults {sum(not self.in_fault(t) for t in errs)}); faults {faults}"
            )
        outside = [e for e, t in zip(s.errors, s.error_times, strict=True) if not self.in_fault(t)]
        db = self.server.connector()
        audit = check_ingest(db, self.ledger)
        problems = verify_load(db, workers)
        print(
            f"\nqueries {s.queries:,}, errors {len(s.errors)} ({len(outside)} outside fault "
            f"windows), wrong answers {len(s.wrong)}"
        )
        for e in (outside + s.wrong + problems)[:5]:
            print("   ", e)
        print(
            f"ingest: {audit['acknowledged']:,} acknowledged, {audit['stored']:,} stored, "
            f"lost {len(audit['lost'])}, partial {len(audit['partial'])}, bad bytes "
            f"{len(audit['bad_bytes'])}, unanswered but committed {audit['in_flight_committed']}"
        )
        print(f"load clients' objects match what they were told: {not problems}")
        self.server.stop()
        checked = self.server.cli("check", check=False)
        print("lensdb check:", checked.stdout.strip().splitlines()[-1] if checked.stdout else "")
        mem = ", ".join(f"{k} {v / 2**20:.0f}/{a / 2**20:.0f}" for k, v, a in self.memory)
        print(f"server memory, RSS/anonymous MiB (a kill starts a new process): {mem}")
        bad = audit["lost"] or audit["partial"] or audit["bad_bytes"] or s.wrong or problems
        return 1 if bad or checked.returncode else 0

    def close(self) -> None:
        self.server.stop()
        if self.mount is not None:
            subprocess.run(["umount", "-l", str(self.mount)], check=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--ingesters", type=int, default=4)
    ap.add_argument("--fault-every", type=float, default=30)
    ap.add_argument("--idle", type=int, default=500)
    ap.add_argument("--tmpfs", action="store_true")
    ap.add_argument("--seed", type=int, default=12)
    soak = Soak(ap.parse_args())
    try:
        code = soak.run()
    finally:
        soak.close()
    sys.exit(code)


if __name__ == "__main__":
    main()
