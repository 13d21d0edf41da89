"""ParallelLoader ingest (N JPEGs, then 2 boxes each) into: one embedded server, one server on
PostgreSQL + S3, and two servers on the same PostgreSQL + S3 (the CSVs split between two
loaders). One run; prints images/s and the ratios the scale-out issue asks for
(PostgreSQL+S3 / embedded >= 0.7x; two servers faster than one), and for PostgreSQL how
much of the ingest the cross-server writer lock was held (sampled from pg_locks every 2 ms):
near 100% means writers queue for it and a second server cannot add throughput.

    python bench/scale_ingest.py [--images 10000] [--threads 8] [--batch 100]

Starts a private PostgreSQL 15 cluster and moto's S3 server (tests/backends.py). moto keeps
objects in its Python process, so S3 here costs more CPU than a real endpoint would on these
same cores; the figures are an upper bound of the overhead.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import os
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


def ingest(
    ports: list[int], images: list[Path], boxes: list[Path], threads: int, batch: int
) -> float:
    from aperturedb.BBoxDataCSV import BBoxDataCSV
    from aperturedb.Connector import Connector
    from aperturedb.ImageDataCSV import ImageDataCSV
    from aperturedb.ParallelLoader import ParallelLoader

    errors = []

    def load(port: int, data) -> None:  # noqa: ANN001
        client = Connector(
            host="localhost", port=port, user="admin", password=bs.ADMIN_PASSWORD, use_ssl=False
        )
        loader = ParallelLoader(client)
        loader.ingest(data, batchsize=batch, numthreads=threads // len(ports), stats=False)
        errors.append(loader.error_counter)

    t = time.perf_counter()
    for phase in (images, boxes):
        workers = [
            threading.Thread(
                target=load,
                args=(
                    port,
                    (
                        ImageDataCSV(str(p), check_image=False)
                        if phase is images
                        else BBoxDataCSV(str(p))
                    ),
                ),
            )
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
    args = ap.parse_args()
    from backends import CephRGW, MotoServer, PostgresCluster

    work = Path(tempfile.mkdtemp(prefix="lensdb-scale-bench-"))
    images_csv, boxes_csv, _ = bs.make_csvs(work, args.images, 24)
    cluster = PostgresCluster().start()
    s3 = (CephRGW() if args.s3 == "rgw" else MotoServer()).start()
    procs: list[subprocess.Popen] = []
    try:
        rates = {}
        locks: dict[int, str] = {}
        p, port = start(["--data", str(work / "embedded")], {}, work / "embedded.log")
        procs.append(p)
        rates["embedded, 1 server"] = args.images / ingest(
            [port], [images_csv], [boxes_csv], args.threads, args.batch
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
            with LockSampler(url) as sampler:
                took = ingest(
                    ports,
                    split(images_csv, n) if n > 1 else [images_csv],
                    split(boxes_csv, n) if n > 1 else [boxes_csv],
                    args.threads,
                    args.batch,
                )
            rates[f"PostgreSQL+S3, {n} server(s)"] = args.images / took
            locks[n] = sampler.summary()
            for p in procs[-n:]:
                p.terminate()
                p.wait()
        print(
            f"ParallelLoader: {args.images} JPEGs then {2 * args.images} boxes, "
            f"{args.threads} threads in all, batches of {args.batch}, S3: {args.s3}"
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
