"""FindImage returning 100 blobs per query from S3, against fetching the same byte ranges
directly with boto3 (16 threads, as lensdb uses), in one run; prints both and their ratio
(target >= 0.8x of the direct fetch's throughput).

    python bench/s3_read.py [--images 100] [--queries 20] [--size 20000]

Starts a private PostgreSQL cluster and moto's S3 server (see tests/backends.py).
"""

from __future__ import annotations

import argparse
import io
import os
import random
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def jpeg(seed: int, size: int) -> bytes:
    from PIL import Image

    rnd = random.Random(seed)
    side = 16
    while True:  # noisy pixels: grow until the JPEG reaches about `size` bytes
        img = Image.frombytes("RGB", (side, side), rnd.randbytes(side * side * 3))
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=90)
        if buf.tell() >= size or side > 2048:
            return buf.getvalue()
        side *= 2 if buf.tell() < size / 4 else 1
        side += 8


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--queries", type=int, default=20)
    ap.add_argument("--size", type=int, default=20_000)
    args = ap.parse_args()
    from backends import MotoServer, PostgresCluster
    from lensdb import Database
    from lensdb.store.blobfiles import place

    cluster, s3 = PostgresCluster().start(), MotoServer().start()
    try:
        os.environ.update(s3.env())
        bucket = s3.new_bucket()
        db = Database(cluster.new_database(), blobs=f"s3://{bucket}/bench")
        images = [jpeg(i, args.size) for i in range(args.images)]
        r, _ = db.query(
            [{"AddImage": {"properties": {"i": i}}} for i in range(len(images))], images
        )
        assert isinstance(r, list), r
        with db.store.read() as txn:
            from lensdb.store.base import Selection

            keys = [row.blob for row in txn.find_objects(Selection(classes=["_Image"]))]
        client = s3.client()
        store = db.store.blobs

        def direct_one(key: str) -> bytes:
            pack, offset, length = place(key)
            return client.get_object(
                Bucket=bucket, Key=store.key(pack), Range=f"bytes={offset}-{offset + length - 1}"
            )["Body"].read()

        pool = ThreadPoolExecutor(16)

        def direct() -> float:
            t = time.perf_counter()
            for _ in range(args.queries):
                got = list(pool.map(direct_one, keys))
            assert sorted(got) == sorted(images)
            return time.perf_counter() - t

        def lensdb() -> float:
            t = time.perf_counter()
            for _ in range(args.queries):
                r, blobs = db.query([{"FindImage": {"blobs": True, "limit": args.images}}])
                assert len(blobs) == args.images
            assert sorted(blobs) == sorted(images)
            return time.perf_counter() - t

        direct(), lensdb()  # warm up connections on both sides
        base, ours = direct(), lensdb()
        n = args.queries * args.images
        print(f"{args.queries} queries x {args.images} images of ~{args.size} B from S3 (moto)")
        print(f"  boto3 ranged GETs, 16 threads: {n / base:8.0f} blobs/s")
        print(f"  lensdb FindImage blobs:        {n / ours:8.0f} blobs/s")
        print(f"  ratio lensdb / direct:         {base / ours:.2f}x (target >= 0.8x)")
        pool.shutdown()
        db.close()
    finally:
        s3.stop()
        cluster.stop()


if __name__ == "__main__":
    main()
