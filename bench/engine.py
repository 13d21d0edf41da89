"""Engine benchmarks, each printed as a ratio against a baseline run in the same process.

1. FindEntity by an indexed property among N entities vs the same lookup in raw SQLite.
2. Ingest of small JPEGs with 5 properties and 2 boxes each through `db.query` in batches vs
   a hand-written ingest doing the same work: raw sqlite3 rows (image size read with Pillow,
   as the rows carry it) + each batch's images appended to one file in the same folder layout
   (lensdb's packs), batches interleaved.
3. FindImage with a resize to 224x224 vs a plain Pillow decode+resize+encode loop.

Usage: python bench/engine.py [--entities 1000000] [--images 20000] [--resize-images 1000]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import sqlite3
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from PIL import Image

from lensdb import Database


def small_jpeg(seed: int, size: tuple[int, int] = (64, 48)) -> bytes:
    rnd = random.Random(seed)
    img = Image.new("RGB", size, (rnd.randrange(256), rnd.randrange(256), rnd.randrange(256)))
    img.putpixel((rnd.randrange(size[0]), rnd.randrange(size[1])), (255, 255, 255))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85)
    return buf.getvalue()


def photo_jpeg(seed: int) -> bytes:
    """A 640x480 JPEG with noise and gradients, so it compresses like a photo."""
    rnd = random.Random(seed)
    noise = Image.effect_noise((640, 480), 40 + rnd.randrange(20)).convert("RGB")
    grad = Image.linear_gradient("L").resize((640, 480)).convert("RGB")
    buf = io.BytesIO()
    Image.blend(noise, grad, 0.5).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def timed(fn, *args):  # noqa: ANN001, ANN202
    t = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t, out


# --- 1. indexed lookup ---------------------------------------------------------------------------


def bench_lookup(root: Path, n: int, lookups: int = 3000) -> None:
    print(f"\n[1] FindEntity by an indexed property among {n:,} entities")
    db = Database(root / "lookup")
    db.query([{"CreateIndex": {"index_type": "entity", "class": "Thing", "property_key": "k"}}])
    batch = 1000
    t0 = time.perf_counter()
    for start in range(0, n, batch):
        q = [
            {
                "AddEntity": {
                    "class": "Thing",
                    "properties": {
                        "k": i,
                        "name": f"thing-{i}",
                        "score": i * 0.5,
                        "tag": "abc"[i % 3],
                    },
                }
            }
            for i in range(start, min(n, start + batch))
        ]
        r, _ = db.query(q)
        assert isinstance(r, list), r
    load = time.perf_counter() - t0
    print(f"    load through db.query: {n / load:,.0f} entities/s ({load:.1f} s)")

    raw_path = root / "raw_lookup.sqlite3"
    raw = sqlite3.connect(raw_path, isolation_level=None)
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute("CREATE TABLE things(id INTEGER PRIMARY KEY, k INTEGER, props TEXT)")
    raw.execute("BEGIN")
    raw.executemany(
        "INSERT INTO things(k, props) VALUES (?, ?)",
        (
            (i, json.dumps({"k": i, "name": f"thing-{i}", "score": i * 0.5, "tag": "abc"[i % 3]}))
            for i in range(n)
        ),
    )
    raw.execute("COMMIT")
    raw.execute("CREATE INDEX things_k ON things(k)")

    keys = [random.randrange(n) for _ in range(lookups)]

    def lensdb_lookup() -> list[float]:
        out = []
        for k in keys:
            t = time.perf_counter()
            r, _ = db.query(
                [
                    {
                        "FindEntity": {
                            "with_class": "Thing",
                            "constraints": {"k": ["==", k]},
                            "results": {"all_properties": True},
                        }
                    }
                ]
            )
            out.append(time.perf_counter() - t)
            assert r[0]["FindEntity"]["entities"][0]["k"] == k
        return out

    def raw_lookup() -> list[float]:
        out = []
        for k in keys:
            t = time.perf_counter()
            rows = raw.execute("SELECT id, props FROM things WHERE k = ?", (k,)).fetchall()
            ents = [json.loads(p) | {"_uniqueid": f"1.0.{i}"} for i, p in rows]
            out.append(time.perf_counter() - t)
            assert ents[0]["k"] == k
        return out

    lensdb_lookup(), raw_lookup()  # warm caches
    ours = statistics.median(lensdb_lookup())
    base = statistics.median(raw_lookup())
    print(f"    lensdb in-process: {ours * 1e6:8.1f} µs per lookup (median of {lookups})")
    print(f"    raw SQLite:        {base * 1e6:8.1f} µs per lookup")
    print(f"    ratio lensdb/raw:  {ours / base:.2f}x   (target: within 3x)")
    db.close()
    raw.close()


# --- 2. ingest -----------------------------------------------------------------------------------


def bench_ingest(root: Path, n: int, per_query: int = 100) -> None:
    print(f"\n[2] Ingest of {n:,} small JPEGs, 5 properties and 2 boxes each")
    jpegs = [small_jpeg(i) for i in range(200)]

    def props(i: int) -> dict:
        return {
            "id": i,
            "name": f"img-{i}",
            "split": "train" if i % 5 else "val",
            "score": i / n,
            "flag": bool(i % 2),
        }

    db = Database(root / "ingest")
    base_dir = root / "raw_ingest"
    for shard in range(256):  # the same folder layout as lensdb's blob folder
        (base_dir / "blobs" / f"{shard:02x}").mkdir(parents=True)
    raw = sqlite3.connect(base_dir / "db.sqlite3", isolation_level=None)
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute("PRAGMA synchronous=NORMAL")
    raw.execute("CREATE TABLE objects(id INTEGER PRIMARY KEY, class TEXT, props TEXT, blob TEXT)")
    raw.execute("CREATE TABLE connections(id INTEGER PRIMARY KEY, class TEXT, src INT, dst INT)")

    def lensdb_batch(start: int) -> None:
        q, blobs = [], []
        for j, i in enumerate(range(start, min(n, start + per_query))):
            ref = j + 1
            q.append({"AddImage": {"_ref": ref, "properties": props(i)}})
            q.append(
                {
                    "AddBoundingBox": {
                        "image_ref": ref,
                        "label": "a",
                        "rectangle": {"x": 1, "y": 2, "width": 10, "height": 12},
                    }
                }
            )
            q.append(
                {
                    "AddBoundingBox": {
                        "image_ref": ref,
                        "label": "b",
                        "rectangle": {"x": 20, "y": 5, "width": 8, "height": 9},
                    }
                }
            )
            blobs.append(jpegs[i % len(jpegs)])
        r, _ = db.query(q, blobs)
        assert isinstance(r, list), r

    def raw_batch(start: int) -> None:
        # The same rows written directly, in the same batch transactions, and the batch's
        # images appended to one file in the same folder layout (lensdb's packs).
        pack = uuid.uuid4().hex
        offset = 0
        raw.execute("BEGIN")
        with open(base_dir / "blobs" / pack[:2] / pack, "wb") as f:
            for i in range(start, min(n, start + per_query)):
                data = jpegs[i % len(jpegs)]
                f.write(data)
                key = f"{pack}.{offset}.{len(data)}"
                offset += len(data)
                width, height = Image.open(io.BytesIO(data)).size  # rows carry the image's size
                p = props(i) | {"width": width, "height": height}
                img = raw.execute(
                    "INSERT INTO objects(class, props, blob) VALUES ('_Image', ?, ?)",
                    (json.dumps(p), key),
                ).lastrowid
                for box in ({"_x": 1, "_label": "a"}, {"_x": 20, "_label": "b"}):
                    b = raw.execute(
                        "INSERT INTO objects(class, props) VALUES ('_BoundingBox', ?)",
                        (json.dumps(box),),
                    ).lastrowid
                    raw.execute(
                        "INSERT INTO connections(class, src, dst) VALUES "
                        "('_BoundingBoxToImage', ?, ?)",
                        (b, img),
                    )
        raw.execute("COMMIT")

    # Batches alternate between the two so that both see the same disk weather (on a shared
    # VM, file creation times swing by 10x within a minute).
    ours = base = 0.0
    for start in range(0, n, per_query):
        ours += timed(lensdb_batch, start)[0]
        base += timed(raw_batch, start)[0]
    db.close()
    raw.close()
    print(f"    lensdb db.query:   {n / ours:8,.0f} images/s ({per_query} images per query)")
    print(f"    raw sqlite+files:  {n / base:8,.0f} images/s")
    print(f"    time lensdb/raw:   {ours / base:.2f}x   (target: within 2x)")


# --- 3. resize on read ---------------------------------------------------------------------------


def bench_resize(root: Path, n: int) -> None:
    print(f"\n[3] FindImage with resize to 224x224 over {n:,} 640x480 JPEGs")
    photos = [photo_jpeg(i) for i in range(min(n, 100))]
    db = Database(root / "resize")
    for start in range(0, n, 50):
        ids = range(start, min(n, start + 50))
        db.query(
            [{"AddImage": {"properties": {"id": i}}} for i in ids],
            [photos[i % len(photos)] for i in ids],
        )
    op = [{"type": "resize", "width": 224, "height": 224}]
    t0 = time.perf_counter()
    got = 0
    for start in range(0, n, 50):
        _, blobs = db.query(
            [
                {
                    "FindImage": {
                        "constraints": {"id": [">=", start, "<", start + 50]},
                        "blobs": True,
                        "operations": op,
                    }
                }
            ]
        )
        got += len(blobs)
    ours = time.perf_counter() - t0
    assert got == n, got
    db.close()

    t0 = time.perf_counter()
    for i in range(n):
        img = Image.open(io.BytesIO(photos[i % len(photos)])).convert("RGB").resize((224, 224))
        img.save(io.BytesIO(), "JPEG", quality=90)
    base = time.perf_counter() - t0
    print(f"    lensdb FindImage:  {n / ours:8,.0f} images/s")
    print(f"    Pillow loop:       {n / base:8,.0f} images/s")
    print(f"    ratio lensdb/loop: {base / ours:.2f}x the speed   (target: at least 1x)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--entities", type=int, default=1_000_000)
    ap.add_argument("--images", type=int, default=20_000)
    ap.add_argument("--resize-images", type=int, default=1_000)
    ap.add_argument("--only", choices=["lookup", "ingest", "resize"])
    args = ap.parse_args()
    print(f"lensdb engine benchmark on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="lensdb-bench-") as tmp:
        root = Path(tmp)
        if args.only in (None, "lookup"):
            bench_lookup(root, args.entities)
        if args.only in (None, "ingest"):
            bench_ingest(root, args.images)
        if args.only in (None, "resize"):
            bench_resize(root, args.resize_images)


if __name__ == "__main__":
    main()
