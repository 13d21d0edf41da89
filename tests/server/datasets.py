"""Generate small image datasets and the SDK's loader CSVs for server tests and the bench."""

from __future__ import annotations

import csv
import io
import json
import random
from dataclasses import dataclass
from pathlib import Path

from PIL import Image


@dataclass
class Dataset:
    folder: Path
    n_images: int
    n_people: int
    n_blobs: int
    images_csv: Path
    boxes_csv: Path
    polygons_csv: Path
    entities_csv: Path
    connections_csv: Path
    blobs_csv: Path
    boxes_per_image: int

    @property
    def n_boxes(self) -> int:
        return self.n_images * self.boxes_per_image

    @property
    def n_polygons(self) -> int:
        return self.n_images // 2

    @property
    def n_connections(self) -> int:
        return self.n_images


def small_jpeg(seed: int, size: int = 32) -> bytes:
    rnd = random.Random(seed)
    img = Image.new(
        "RGB", (size, size), (rnd.randrange(256), rnd.randrange(256), rnd.randrange(256))
    )
    # A few stripes so images differ in content, not just colour.
    for x in range(0, size, 4):
        for y in range(size):
            img.putpixel((x, y), (seed % 256, (seed * 7) % 256, (seed * 13) % 256))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=80)
    return buf.getvalue()


def _write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def make_dataset(
    folder: Path,
    n_images: int = 2000,
    n_people: int = 100,
    n_blobs: int = 100,
    boxes_per_image: int = 1,
) -> Dataset:
    """JPEG files plus one CSV per SDK loader; ids are deterministic so tests can query them."""
    folder.mkdir(parents=True, exist_ok=True)
    img_dir = folder / "images"
    img_dir.mkdir(exist_ok=True)
    image_rows = []
    for i in range(n_images):
        path = img_dir / f"img{i:05d}.jpg"
        path.write_bytes(small_jpeg(i))
        label = ("cat", "dog", "bird")[i % 3]
        image_rows.append([str(path), i, label, i % 10, i])
    images_csv = _write_csv(
        folder / "images.csv", ["filename", "id", "label", "group", "constraint_id"], image_rows
    )

    box_rows = []
    for i in range(n_images):
        for b in range(boxes_per_image):
            bid = i * boxes_per_image + b
            box_rows.append([i, 2 + b, 3 + b, 10, 12, ("cat", "dog", "bird")[i % 3], bid, bid])
    boxes_csv = _write_csv(
        folder / "boxes.csv",
        ["id", "x_pos", "y_pos", "width", "height", "_label", "box_id", "constraint_box_id"],
        box_rows,
    )

    poly_rows = []
    for i in range(0, n_images, 2):
        poly = [[[1, 1], [20, 2], [15, 18], [3, 12]]]
        poly_rows.append([i, i, i, "region", json.dumps(poly)])
    polygons_csv = _write_csv(
        folder / "polygons.csv",
        ["id", "polygon_id", "constraint_polygon_id", "_label", "polygons"],
        poly_rows,
    )

    entity_rows = [["Person", f"person{p}", p, p] for p in range(n_people)]
    entities_csv = _write_csv(
        folder / "people.csv", ["EntityClass", "name", "pid", "constraint_pid"], entity_rows
    )

    conn_rows = [
        ["depicts", i, i % n_people, round((i % 100) / 100, 2), i, i] for i in range(n_images)
    ]
    connections_csv = _write_csv(
        folder / "connections.csv",
        ["ConnectionClass", "_Image@id", "Person@pid", "confidence", "cid", "constraint_cid"],
        conn_rows,
    )

    blob_dir = folder / "blobs"
    blob_dir.mkdir(exist_ok=True)
    blob_rows = []
    for b in range(n_blobs):
        path = blob_dir / f"blob{b:04d}.bin"
        path.write_bytes(bytes([b % 256]) * (100 + b))
        blob_rows.append([str(path), b, f"blob {b}", b])
    blobs_csv = _write_csv(
        folder / "blobs.csv", ["filename", "bid", "name", "constraint_bid"], blob_rows
    )
    return Dataset(
        folder,
        n_images,
        n_people,
        n_blobs,
        images_csv,
        boxes_csv,
        polygons_csv,
        entities_csv,
        connections_csv,
        blobs_csv,
        boxes_per_image,
    )
