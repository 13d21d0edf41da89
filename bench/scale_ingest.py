"""ParallelLoader ingest (N JPEGs, then 2 boxes each) into: one embedded server, one server on
PostgreSQL + S3, and two servers on the same PostgreSQL + S3 (the CSVs split between two
loaders). One run; prints images/s and the ratios the scale-out issue asks for
(PostgreSQL+S3 / embedded >= 0.7x; two servers faster than one), and for PostgreSQL how
much of the ingest the cross-server writer lock was held (sampled from pg_locks every 2 ms):
near 100% means writers queue for it and a second server cannot add throughput. Also the CPU
each part of the stack used during the ingest (from /proc): when the machine is busy and one
server is far from a core, a second server has nothing to relieve.

    python bench/scale_ingest.py [--images 10000] [--threads 8] [--batch 100]
                                 [--loaders N] [--processes] [--s3 moto|rgw]

Starts a private PostgreSQL 15 cluster and moto's S3 server (tests/backends.py). moto keeps
objects in its Python process, so S3 here costs more CPU than a real endpoint would on these
same cores; the figures are an upper bound of the overhead.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
_spec = importlib.util.spec_from_file_location("bench_server", HERE / "server.py")
bs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bs)  # type: ignore[union-attr]


def start(args: list[str], env: dict[str, str], log: Path) -> tuple[subprocess.Popen, int]:
    port, http = bs.free_port(), bs.free_port()
    cmd = [
        sys.executable,
        "-c",
        "from lensdb.cli import main; main()",
        "serve",
        *args,
        "--port",
        str(port),
        "--http-port",
        str(http),
    ]
    proc = subprocess.Popen(
        cmd,
        env={**os.environ, **env, "LENSDB_ADMIN_PASSWORD": bs.ADMIN_PASSWORD},
        stdout=subprocess.DEVNULL,
        stderr=open(log, "wb"),
    )
    bs.wait_port(port, proc)
    return proc, port


def split(path: Path, parts: int) -> list[Path]:
    rows = list(csv.reader(open(path)))
    out = []
    for k in range(parts):
        p = path.with_name(f"{path.stem}.{k}.csv")
        with open(p, "w", newline="") as f:
            csv.writer(f).writerows([rows[0], *rows[1 + k :: parts]])
        out.append(p)
    return out


class LockSampler:
    """Samples, on its own connection, whether lensdb's writer lock is held and how many
    transactions wait for it (store/postgres.py: advisory lock (_NS, _WRITER))."""

    def __init__(self, url: str) -> None:
        import psycopg

        from lensdb.store.postgres import WRITER_LOCK

        self.conn = psycopg.connect(url, autocommit=True)
        self.key = WRITER_LOCK
        self.samples: list[tuple[int, int]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        sql = (
            "SELECT count(*) FILTER (WHERE granted), count(*) FILTER (WHERE NOT granted) "
            "FROM pg_locks WHERE locktype = 'advisory' AND classid = %s AND objid = %s "
            "AND objsubid = 2"
        )
        while not self.stop.wait(0.002):
            self.samples.append(self.conn.execute(sql, self.key).fetchone())

    def __enter__(self) -> LockSampler:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
        self.conn.close()

    def summary(self) -> str:
        n = max(1, len(self.samples))
        held = sum(1 for h, _ in self.samples if h) / n
        waiting = sum(w for _, w in self.samples) / n
        return f"writer lock held {held:4.0%} of the time, {waiting:.1f} waiting on average"


class CpuMeter:
    """CPU time (user + system) of parts of the stack over an interval, in cores, and how busy
    the whole machine was. A part is root processes, with their children when `tree`."""

    def __init__(self, parts: dict[str, tuple[list[int], bool]]) -> None:
        self.parts = parts

    @staticmethod
    def _machine() -> tuple[int, int]:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:]]
        return sum(ticks) - ticks[3] - ticks[4], sum(ticks)  # busy (no idle, iowait), all

    def _times(self) -> dict[str, float]:
        import psutil

        out = {}
        for name, (pids, tree) in self.parts.items():
            total = 0.0
            for pid in pids:
                try:
                    root = psutil.Process(pid)
                    for proc in [root, *(root.children(recursive=True) if tree else [])]:
                        t = proc.cpu_times()
                        total += t.user + t.system
                except psutil.Error:  # gone meanwhile
                    pass
                if pid == os.getpid():  # with the loader processes it ran and waited for
                    done = resource.getrusage(resource.RUSAGE_CHILDREN)
                    total += done.ru_utime + done.ru_stime
            out[name] = total
        return out

    def __enter__(self) -> CpuMeter:
        self.t0, self.m0, self.c0 = time.perf_counter(), self._machine(), self._times()
        return self

    def __exit__(self, *exc: object) -> None:
        took = time.perf_counter() - self.t0
        m1, c1 = self._machine(), self._times()
        busy = (m1[0] - self.m0[0]) / max(1, m1[1] - self.m0[1])
        used = ", ".join(f"{k} {(c1[k] - self.c0[k]) / took:.2f}" for k in c1)
        self.text = f"machine {busy:.0%} busy ({os.cpu_count()} cores); cores used: {used}"


def load(port: int, path: str, kind: str, threads: int, batch: int) -> int:
    """One ParallelLoader ingest of a CSV of images or boxes through the server at `port`; its
    number of failed queries."""
    from aperturedb.BBoxDataCSV import BBoxDataCSV
    from aperturedb.Connector import Connector
    from aperturedb.ImageDataCSV import ImageDataCSV
    from aperturedb.ParallelLoader import ParallelLoader

    client = Connector(
        host="localhost", port=port, user="admin", password=bs.ADMIN_PASSWORD, use_ssl=False
    )
    data = ImageDataCSV(path, check_image=False) if kind == "images" else BBoxDataCSV(path)
    loader = ParallelLoader(client)
    loader.ingest(data, batchsize=batch, numthreads=threads, stats=False)
    return loader.error_counter


def ingest(
    ports: list[int],
    images: list[Path],
    boxes: list[Path],
    threads: int,
    batch: int,
    processes: bool = False,
) -> float:
    """Seconds to load the images, then the boxes: CSV part k through the server at ports[k],
    its loaders sharing `threads` threads in all. With `processes`, each loader runs in its own
    process (`--load`), so loaders do not share one interpreter lock."""
    errors: list[int] = []

    def run(port: int, path: Path, kind: str, share: int) -> None:
        if not processes:
            errors.append(load(port, str(path), kind, share, batch))
            return
        args = ["--load", str(port), str(path), kind, str(share), str(batch)]
        done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
        lines = done.stdout.split()
        if done.returncode or not lines or not lines[-1].isdigit():
            print(f"    !! a loader failed (exit {done.returncode}): {done.stderr[-2000:]}")
            errors.append(1)
        else:
            errors.append(int(lines[-1]))

    t = time.perf_counter()
    for kind, phase in (("images", images), ("boxes", boxes)):
        share = max(1, threads // len(phase))
        workers = [
            threading.Thread(target=run, args=(port, p, kind, share))
            for port, p in zip(ports, phase, strict=True)
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    took = time.perf_counter() - t
    if any(errors):
        print(f"    !! {sum(errors)} failed queries")
    return took


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=10_000)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument(
        "--s3",
        choices=["moto", "rgw"],
        default="moto",
        help="the S3 endpoint: moto's server (Python) or Ceph's RGW on a one-node cluster",
    )
    ap.add_argument(
        "--loaders",
        type=int,
        default=0,
        help="ParallelLoaders sharing the threads, the CSVs split between them and loader k "
        "sending to server k mod the number of servers (default: one per server)",
    )
    ap.add_argument(
        "--processes",
        action="store_true",
        help="each loader in its own process (by default all are threads of this one)",
    )
    ap.add_argument("--load", nargs=5, help=argparse.SUPPRESS)  # PORT CSV KIND THREADS BATCH
    args = ap.parse_args()
    if args.loaders > args.threads:
        ap.error("--loaders shares --threads: give at least as many threads as loaders")
    if args.load:
        port, path, kind, threads, batch = args.load
        print(load(int(port), path, kind, int(threads), int(batch)))
        return
    from backends import CephRGW, MotoServer, PostgresCluster

    work = Path(tempfile.mkdtemp(prefix="lensdb-scale-bench-"))
    images_csv, boxes_csv, _ = bs.make_csvs(work, args.images, 24)

    def parts_for(ports: list[int]) -> tuple[list[int], list[Path], list[Path]]:
        n = max(args.loaders, len(ports))
        if n == 1:
            return ports, [images_csv], [boxes_csv]
        return [ports[k % len(ports)] for k in range(n)], split(images_csv, n), split(boxes_csv, n)

    cluster = PostgresCluster().start()
    s3 = (CephRGW() if args.s3 == "rgw" else MotoServer()).start()
    procs: list[subprocess.Popen] = []
    try:
        rates = {}
        locks: dict[int, str] = {}
        p, port = start(["--data", str(work / "embedded")], {}, work / "embedded.log")
        procs.append(p)
        rates["embedded, 1 server"] = args.images / ingest(
            *parts_for([port]), args.threads, args.batch, args.processes
        )
        p.terminate()
        p.wait()
        for n in (1, 2):
            url, bucket = cluster.new_database(), s3.new_bucket()
            ports = []
            for k in range(n):
                p, port = start(
                    [
                        "--data",
                        url,
                        "--blobs",
                        f"s3://{bucket}/b",
                        "--state",
                        str(work / f"state{n}{k}"),
                    ],
                    s3.env(),
                    work / f"pg{n}{k}.log",
                )
                procs.append(p)
                ports.append(port)
            parts = {
                "client": ([os.getpid()], False),
                "server(s)": ([p.pid for p in procs[-n:]], False),
                "PostgreSQL": (cluster.pids(), True),
                "S3": ([s3.proc.pid] if getattr(s3, "proc", None) else [], True),
            }
            with LockSampler(url) as sampler, CpuMeter(parts) as cpu:
                took = ingest(*parts_for(ports), args.threads, args.batch, args.processes)
            rates[f"PostgreSQL+S3, {n} server(s)"] = args.images / took
            locks[n] = sampler.summary() + "\n      " + cpu.text
            for p in procs[-n:]:
                p.terminate()
                p.wait()
        print(
            f"ParallelLoader: {args.images} JPEGs then {2 * args.images} boxes, "
            f"{args.threads} threads in all, batches of {args.batch}, S3: {args.s3}, "
            f"loaders: {args.loaders or 'one per server'}"
            f"{' (a process each)' if args.processes else ' (threads of one process)'}"
        )
        for name, rate in rates.items():
            print(f"  {name:28s} {rate:7.0f} images/s (with their boxes)")
        one, two = rates["PostgreSQL+S3, 1 server(s)"], rates["PostgreSQL+S3, 2 server(s)"]
        print(
            f"  PostgreSQL+S3 / embedded:    {one / rates['embedded, 1 server']:.2f}x "
            "(target >= 0.7x)"
        )
        print(f"  two servers / one:           {two / one:.2f}x (target > 1)")
        for n, text in locks.items():
            print(f"  {n} server(s): {text}")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        s3.stop()
        cluster.stop()
        import shutil

        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
