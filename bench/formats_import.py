"""COCO import speed: `lensdb import coco` (in-process, through the query language) against a baseline.

Data: 5,000 images (small JPEGs) with 36,000 boxes, generated here in COCO's layout.
Baseline, in the same run: pycocotools loading the same JSON, plus a raw write of the same rows
(sqlite3, one transaction per 100 images, like the import's batches) and the same image files.
Target (issue 13): >= 2,000 images/s.

Run: .venv/bin/python bench/formats_import.py [--images 5000] [--boxes 36000] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import random
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

from PIL import Image

from lensdb import Database
from lensdb.client import EmbeddedClient
from lensdb.formats import read_source
from lensdb.formats.importer import ImageSizes, check_images, run_import
from lensdb.formats.lsjson import results


def generate(root: Path, n_images: int, n_boxes: int) -> Path:
    rng = random.Random(13)
    (root / "images").mkdir(parents=True)
    templates = []
    for k in range(16):  # a few distinct small JPEGs, written once per image
        buf = io.BytesIO()
        Image.new("RGB", (64, 48), (k * 15, 90, 200 - k * 10)).save(buf, "JPEG", quality=80)
        templates.append(buf.getvalue())
    images, anns = [], []
    for i in range(n_images):
        name = f"{i:06d}.jpg"
        (root / "images" / name).write_bytes(templates[i % len(templates)])
        images.append({"id": i + 1, "file_name": name, "width": 64, "height": 48})
    for j in range(n_boxes):
        x, y = rng.uniform(0, 40), rng.uniform(0, 30)
        anns.append({"id": j + 1, "image_id": j % n_images + 1, "category_id": j % 5 + 1,
                     "bbox": [x, y, rng.uniform(1, 20), rng.uniform(1, 15)], "iscrowd": 0,
                     "area": 10.0})  # fmt: skip
    doc = {"images": images, "annotations": anns,
           "categories": [{"id": c, "name": f"class{c}"} for c in range(1, 6)]}  # fmt: skip
    path = root / "instances.json"
    path.write_text(json.dumps(doc))
    return path


def lensdb_import(path: Path, data: Path, as_kind: str = "auto") -> tuple[float, object]:
    start = time.perf_counter()
    sizes = ImageSizes(str(path))
    parsed = read_source("coco", path, path.parent / "images", as_kind, sizes)
    image_sizes = check_images(parsed, sizes)
    checked = time.perf_counter()
    client = EmbeddedClient(Database(str(data)))
    summary = run_import(
        client, parsed, dataset="bench", source="import:coco", sizes=image_sizes, ls_results=results
    )
    client.close()
    end = time.perf_counter()
    print(f"  lensdb: read + check the JSON and every image header {checked - start:.2f} s, "
          f"write (queries) {end - checked:.2f} s")  # fmt: skip
    return end - start, summary


def baseline(path: Path, out: Path) -> float:
    from pycocotools.coco import COCO

    start = time.perf_counter()
    coco = COCO(str(path))
    out.mkdir(parents=True)
    db = sqlite3.connect(out / "raw.sqlite")
    db.execute("CREATE TABLE images (id INTEGER PRIMARY KEY, guid TEXT UNIQUE, props TEXT)")
    db.execute(
        "CREATE TABLE boxes (image INTEGER, label TEXT, x REAL, y REAL, w REAL, h REAL, props TEXT)"
    )
    ids = coco.getImgIds()
    names = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}
    for i in range(0, len(ids), 100):
        with db:
            for img in coco.loadImgs(ids[i : i + 100]):
                raw = (path.parent / "images" / img["file_name"]).read_bytes()
                (out / img["file_name"]).write_bytes(raw)
                db.execute(
                    "INSERT INTO images VALUES (?, ?, ?)",
                    (img["id"], "bench/" + img["file_name"], json.dumps(img)),
                )
                db.executemany(
                    "INSERT INTO boxes VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [
                        (img["id"], names[a["category_id"]], *a["bbox"], json.dumps(a))
                        for a in coco.loadAnns(coco.getAnnIds(imgIds=img["id"]))
                    ],
                )
    db.close()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--boxes", type=int, default=36000)
    ap.add_argument("--profile", action="store_true", help="print where the import's time goes")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="lensdb-bench-formats-"))
    try:
        path = generate(tmp / "src", args.images, args.boxes)
        base = baseline(path, tmp / "raw")
        if args.profile:
            prof = cProfile.Profile()
            prof.enable()
        took, summary = lensdb_import(path, tmp / "db")
        if args.profile:
            prof.disable()
            pstats.Stats(prof).sort_stats("tottime").print_stats(30)
        print("summary:", "; ".join(summary.lines()))  # type: ignore[attr-defined]
        # The same boxes as bare predictions: no LS_annotation entity and one connection per box.
        took_p, _ = lensdb_import(path, tmp / "db-predictions", "predictions")
        print(f"{args.images} images, {args.boxes} boxes (COCO)")
        print(f"baseline (pycocotools + raw sqlite3 + files): {base:.2f} s, "
              f"{args.images / base:,.0f} images/s")  # fmt: skip
        print(f"lensdb import coco (in-process, annotations): {took:.2f} s, "
              f"{args.images / took:,.0f} images/s, {took / base:.1f}x the baseline's time")  # fmt: skip
        print(f"lensdb import coco --as predictions:           {took_p:.2f} s, "
              f"{args.images / took_p:,.0f} images/s, {took_p / base:.1f}x the baseline's time")  # fmt: skip
        print(f"target >= 2,000 images/s: {'met' if args.images / took >= 2000 else 'missed'}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
