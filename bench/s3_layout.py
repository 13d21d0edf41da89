"""Which S3 layout for a query's blobs: one object per blob, or one pack per query read back
with ranged GETs? Measured on the same endpoint in one run; prints times and ratios.

    python bench/s3_layout.py            # starts moto's server on a free port
    AWS_ENDPOINT_URL=... python bench/s3_layout.py --bucket mybucket   # a real endpoint
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor


def _moto() -> subprocess.Popen:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "AWS_ACCESS_KEY_ID": "x",
            "AWS_SECRET_ACCESS_KEY": "x",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    )
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    return proc


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bucket", default="lensdb-bench")
    ap.add_argument("--blobs", type=int, default=100)
    ap.add_argument("--size", type=int, default=20_000)
    ap.add_argument("--queries", type=int, default=10)
    args = ap.parse_args()
    proc = _moto() if not os.environ.get("AWS_ENDPOINT_URL") else None
    try:
        import boto3

        s3 = boto3.client("s3")
        if proc is not None:
            s3.create_bucket(Bucket=args.bucket)
        blobs = [os.urandom(args.size) for _ in range(args.blobs)]

        t = time.perf_counter()
        for q in range(args.queries):
            for i, b in enumerate(blobs):
                s3.put_object(Bucket=args.bucket, Key=f"single/{q}/{i}", Body=b)
        single_put = time.perf_counter() - t
        t = time.perf_counter()
        for q in range(args.queries):
            s3.put_object(Bucket=args.bucket, Key=f"pack/{q}", Body=b"".join(blobs))
        pack_put = time.perf_counter() - t

        def get_single(i: int) -> bytes:
            return s3.get_object(Bucket=args.bucket, Key=f"single/0/{i}")["Body"].read()

        def get_range(i: int) -> bytes:
            start = i * args.size
            return s3.get_object(
                Bucket=args.bucket, Key="pack/0", Range=f"bytes={start}-{start + args.size - 1}"
            )["Body"].read()

        timings = {}
        for name, fn in (("single GET", get_single), ("ranged GET", get_range)):
            t = time.perf_counter()
            with ThreadPoolExecutor(16) as pool:
                got = list(pool.map(fn, range(args.blobs)))
            timings[name] = time.perf_counter() - t
            assert got == blobs
        n = args.queries
        print(f"{n} queries x {args.blobs} blobs of {args.size} B")
        print(f"  write, one object per blob: {single_put:.3f} s ({n * args.blobs} PUTs)")
        print(
            f"  write, one pack per query:  {pack_put:.3f} s ({n} PUTs)"
            f"  -> {single_put / pack_put:.1f}x faster"
        )
        print(
            f"  read {args.blobs} blobs, 16 threads: single {timings['single GET']:.3f} s, "
            f"ranged {timings['ranged GET']:.3f} s "
            f"(ratio {timings['single GET'] / timings['ranged GET']:.2f})"
        )
    finally:
        if proc is not None:
            proc.terminate()


if __name__ == "__main__":
    main()
