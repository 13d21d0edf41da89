"""Small datasets on disk in each format, with float coordinates, and a way to run the CLI."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

from PIL import Image

from lensdb import Database
from lensdb.client import EmbeddedClient


def jpeg(width: int, height: int, seed: int) -> bytes:
    img = Image.new("RGB", (width, height), (seed * 37 % 256, 90, 160))
    for x in range(0, width, 5):
        img.putpixel((x, (x * seed) % height), (255, 255, 255))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85)
    return buf.getvalue()


def write_images(folder: Path, n: int, prefix: str = "img") -> list[tuple[str, int, int]]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        w, h = 64 + 8 * i, 48 + 4 * i
        name = f"{prefix}{i:03d}.jpg"
        (folder / name).write_bytes(jpeg(w, h, i + 1))
        out.append((name, w, h))
    return out


def coco_dataset(root: Path, n: int = 4, predictions: bool = False) -> Path:
    """images/ and instances.json: per image two boxes (floats), one polygon, one person with
    keypoints; image 0 also an RLE mask; with `predictions`, scored annotations instead."""
    images = write_images(root / "images", n)
    anns = []
    for i in range(len(images)):
        iid = 100 + i
        base = {"image_id": iid, "iscrowd": 0}
        if predictions:
            base["score"] = 0.5 + i / 100
        anns.append({**base, "id": len(anns) + 1, "category_id": 1,
                     "bbox": [1.25 + i, 2.5, 10.125, 7.75 + i / 3], "area": 78.0})  # fmt: skip
        anns.append({**base, "id": len(anns) + 1, "category_id": 2,
                     "bbox": [20.5, 10.0 + i / 7, 15.0, 9.333], "area": 140.0,
                     "segmentation": [[20.5, 10.0, 35.5, 10.0, 35.5, 19.333, 20.5, 19.333]]})  # fmt: skip
        anns.append({**base, "id": len(anns) + 1, "category_id": 3,
                     "bbox": [5.5, 20.25, 30.0, 20.0], "area": 600.0, "num_keypoints": 2,
                     "keypoints": [10.5, 25.25, 2, 0, 0, 0, 30.75, 35.0, 1]})  # fmt: skip
    if not predictions:
        mask = [[0] * 10 for _ in range(12)]
        for y in range(3, 8):
            for x in range(2, 7):
                mask[y][x] = 1
        counts, cur, run = [], 0, 0
        for x in range(10):  # column-major runs, starting with zeros
            for y in range(12):
                v = mask[y][x]
                if v != cur:
                    counts.append(run)
                    cur, run = v, 0
                run += 1
        counts.append(run)
        anns.append({"id": len(anns) + 1, "image_id": 100, "category_id": 1, "iscrowd": 1,
                     "bbox": [2.0, 3.0, 5.0, 5.0], "area": 25.0,
                     "segmentation": {"size": [12, 10], "counts": counts}})  # fmt: skip
        anns.append({"id": len(anns) + 1, "image_id": 101, "category_id": 1, "iscrowd": 1,
                     "bbox": [2.0, 3.0, 5.0, 5.0], "area": 0.0,
                     "segmentation": {"size": [12, 10], "counts": [120]}})  # fmt: skip
    doc = {
        "images": [
            {
                "id": 100 + i,
                "file_name": name,
                "width": w,
                "height": h,
                "license": 1,
                "date_captured": "2024-01-02",
            }
            for i, (name, w, h) in enumerate(images)
        ],  # fmt: skip
        "annotations": anns,
        "categories": [
            {"id": 1, "name": "cat", "supercategory": "animal"},
            {"id": 2, "name": "dog", "supercategory": "animal"},
            {
                "id": 3,
                "name": "person",
                "supercategory": "person",
                "keypoints": ["nose", "left_eye", "right_eye"],
                "skeleton": [[1, 2], [1, 3]],
            },
        ],  # fmt: skip
    }
    path = root / ("results.json" if predictions else "instances.json")
    path.write_text(json.dumps(doc, indent=1))
    return path


def run_cli(*args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """`lensdb ARGS` in a child process, as a user runs it (this worktree's code first)."""
    src = str(Path(__file__).parents[2] / "src")
    full_env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", ""),
                **(env or {})}  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-c", "from lensdb.cli import main; main()", *args],
        env=full_env,
        capture_output=True,
        text=True,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"lensdb {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def query(data: Path, q: list[dict]) -> list[dict]:
    client = EmbeddedClient(Database(str(data)))
    try:
        response, _ = client.query(q)
        return response
    finally:
        client.close()


def count(data: Path, command: str, body: dict | None = None) -> int:
    r = query(data, [{command: {**(body or {}), "results": {"count": True}}}])
    return r[0][command]["count"]


def boxes_by_file(coco: dict) -> dict[str, list[tuple[str, tuple[float, ...]]]]:
    """file name -> sorted (label, bbox) of a COCO dict."""
    files = {img["id"]: img["file_name"].split("/")[-1] for img in coco["images"]}
    cats = {c["id"]: c["name"] for c in coco["categories"]}
    out: dict[str, list] = {f: [] for f in files.values()}
    for a in coco["annotations"]:
        if a.get("bbox"):
            out[files[a["image_id"]]].append((cats[a["category_id"]], tuple(a["bbox"])))
    return {k: sorted(v) for k, v in out.items()}


def assert_same_boxes(a: dict, b: dict, tol: float = 1e-6) -> None:
    assert a.keys() == b.keys()
    for f in a:
        assert len(a[f]) == len(b[f]), f
        for (la, ba), (lb, bb) in zip(a[f], b[f], strict=True):
            assert la == lb, f
            assert all(abs(x - y) <= tol for x, y in zip(ba, bb, strict=True)), (f, ba, bb)
