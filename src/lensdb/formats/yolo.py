"""YOLO (Ultralytics layout) in and out: `data.yaml`, `images/<split>/`, `labels/<split>/`.

Label lines are `class cx cy w h` (a box), `class x1 y1 x2 y2 ...` (a segment: a polygon), or
with `kpt_shape` in data.yaml, a box followed by keypoints (`x y [v]` each). All values are
normalized to the image size, which is read from the image header.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from lensdb.formats.model import (
    ANNOTATIONS,
    PREDICTIONS,
    Box,
    Category,
    Dataset,
    FormatError,
    ImageRecord,
    Keypoint,
    Labeling,
    Polygon,
    number,
)

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"}
SPLITS = ("train", "val", "test")


def _names(yaml_path: Path, names: object) -> list[str]:
    if isinstance(names, list):
        return [str(n) for n in names]
    if isinstance(names, dict):
        try:
            keys = sorted(int(k) for k in names)
        except (TypeError, ValueError):
            raise FormatError(yaml_path, "names", "keys must be class numbers") from None
        if keys != list(range(len(keys))):
            raise FormatError(yaml_path, "names", "class numbers must be 0..n-1")
        return [str(names[k] if k in names else names[str(k)]) for k in keys]
    raise FormatError(yaml_path, "names", "missing: a list or a {number: name} map")


def _image_dirs(root: Path, yaml_path: Path, entry: object, split: str) -> list[Path]:
    entries = entry if isinstance(entry, list) else [entry]
    out = []
    for e in entries:
        if not isinstance(e, str):
            raise FormatError(yaml_path, split, f"expected a folder, got {e!r}")
        p = root / e
        if p.suffix == ".txt" and p.is_file():
            out.extend((root / line.strip()) for line in p.read_text().splitlines() if line.strip())
        elif p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_EXTENSIONS))
        else:
            raise FormatError(yaml_path, split, f"{p} is not a folder")
    return out


def label_file(image: Path) -> Path:
    """Ultralytics' rule: the last `images` folder of the path becomes `labels`, suffix .txt."""
    parts = list(image.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


def read(source: Path, sizes: Callable[[Path], tuple[float, float]], kind: str) -> Dataset:
    """Parse a YOLO dataset folder (or its data.yaml); `sizes(path)` reads an image's size."""
    yaml_path = source / "data.yaml" if source.is_dir() else source
    try:
        doc = yaml.safe_load(yaml_path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "yaml"
        raise FormatError(yaml_path, where, str(getattr(e, "problem", e))) from None
    except OSError as e:
        raise FormatError(yaml_path, "file", e.strerror or str(e)) from None
    if not isinstance(doc, dict):
        raise FormatError(yaml_path, "top level", "expected a mapping")
    names = _names(yaml_path, doc.get("names"))
    root = yaml_path.parent / str(doc.get("path") or ".")
    kpt = doc.get("kpt_shape")
    kpt_count, kpt_dims = (int(kpt[0]), int(kpt[1])) if isinstance(kpt, list) else (0, 0)
    data = Dataset(source=str(yaml_path))
    data.categories = [Category(n, i) for i, n in enumerate(names)]
    seen: set[Path] = set()
    splits = [s for s in SPLITS if doc.get(s)] or []
    if not splits:
        raise FormatError(yaml_path, "train", "missing: no train/val/test images listed")
    for split in splits:
        for image in _image_dirs(root, yaml_path, doc[split], split):
            if image in seen:
                continue
            seen.add(image)
            w, h = sizes(image)
            lab = _labels(label_file(image), names, w, h, kpt_count, kpt_dims, kind)
            try:
                rel = image.relative_to(root).as_posix()
            except ValueError:
                rel = image.name
            data.images.append(
                ImageRecord(
                    file_name=rel,
                    path=image,
                    width=w,
                    height=h,
                    properties={"split": split},
                    labelings=(lab,) if lab.count() else (),
                )
            )
    return data


def _labels(
    path: Path, names: list[str], w: float, h: float, kpt_count: int, kpt_dims: int, kind: str
) -> Labeling:
    boxes, polygons, keypoints = [], [], []
    if not path.is_file():
        return Labeling(kind=kind)
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        tokens = line.split()
        if not tokens:
            continue
        where = f"line {n}"
        try:
            cls = int(tokens[0])
        except ValueError:
            raise FormatError(path, where, f"class {tokens[0]!r} is not a number") from None
        if not 0 <= cls < len(names):
            raise FormatError(path, where, f"class {cls} is not in data.yaml's names")
        vals = [number(path, where, t) for t in tokens[1:]]
        label = names[cls]
        instance = f"{path.stem}:{n}"
        score = None
        if kpt_count and len(vals) in (4 + kpt_count * kpt_dims, 5 + kpt_count * kpt_dims):
            if len(vals) == 5 + kpt_count * kpt_dims:
                score = vals.pop()
            boxes.append(_box(path, where, label, vals[:4], w, h, score, instance))
            for k in range(kpt_count):
                pt = vals[4 + k * kpt_dims : 4 + (k + 1) * kpt_dims]
                vis = int(pt[2]) if kpt_dims == 3 else 2
                if vis == 0:
                    continue
                keypoints.append(
                    Keypoint(f"{label}_{k}", pt[0] * w, pt[1] * h, vis, k, label, instance, score)
                )
        elif len(vals) in (4, 5):
            score = vals[4] if len(vals) == 5 else None
            boxes.append(_box(path, where, label, vals[:4], w, h, score, instance))
        elif len(vals) >= 6 and len(vals) % 2 == 0:
            ring = tuple((vals[i] * w, vals[i + 1] * h) for i in range(0, len(vals), 2))
            polygons.append(Polygon(label, (ring,), None, instance))
        else:
            raise FormatError(
                path, where, f"{len(vals)} numbers: a box has 4, a segment an even number >= 6"
            )
    if kind == ANNOTATIONS and any(b.score is not None for b in boxes):
        kind = PREDICTIONS  # lines with a confidence are a model's output
    return Labeling(kind, tuple(boxes), tuple(polygons), tuple(keypoints))


def _box(
    path: Path, where: str, label: str, v: list[float], w: float, h: float, score, instance
) -> Box:
    cx, cy, bw, bh = v
    if bw <= 0 or bh <= 0:
        raise FormatError(path, where, "box width and height must be > 0")
    return Box(label, (cx - bw / 2) * w, (cy - bh / 2) * h, bw * w, bh * h, score, instance)


# ---- writing ----------------------------------------------------------------------------------


def lines(
    rec: ImageRecord, class_of: dict[str, int], kinds: set[str], kpt_count: int = 0
) -> tuple[list[str], int]:
    """One image's label lines and how many keypoints could not be written.

    Boxes, then polygons as segment lines (full float precision). With `kpt_count`, a pose
    dataset: each box line carries the keypoints of its instance (`x y v`, 0 0 0 where none).
    """
    w, h = float(rec.width or 1), float(rec.height or 1)
    out: list[str] = []
    left = 0
    for lab in rec.labelings:
        if lab.kind not in kinds:
            continue
        points: dict[str | None, list] = {}
        for k in lab.keypoints:
            points.setdefault(k.instance, []).append(k)
        placed: set[str | None] = set()
        for b in lab.boxes:
            vals = [(b.x + b.width / 2) / w, (b.y + b.height / 2) / h, b.width / w, b.height / h]
            if kpt_count:
                flat = [0.0] * (3 * kpt_count)
                if b.instance is not None and b.instance in points:
                    placed.add(b.instance)
                    for j, k in enumerate(points[b.instance]):
                        at = k.index if k.index is not None else j
                        if at < kpt_count:
                            flat[3 * at : 3 * at + 3] = [k.x / w, k.y / h, float(k.visibility)]
                vals.extend(flat)
            if lab.kind == PREDICTIONS and b.score is not None:
                vals.append(b.score)
            out.append(" ".join([str(class_of[b.label]), *map(repr, vals)]))
        left += sum(len(v) for key, v in points.items() if key not in placed)
        for p in lab.polygons:
            for ring in p.rings:
                coords = [c for x, y in ring for c in (x / w, y / h)]
                out.append(" ".join([str(class_of[p.label]), *map(repr, coords)]))
    return out, left


def data_yaml(splits: list[str], names: list[str], kpt_count: int = 0) -> dict[str, Any]:
    doc: dict[str, Any] = {"path": "."}
    if splits == [""]:
        doc.update(train="images", val="images")
    else:
        for s in splits:
            doc[s if s in SPLITS else s] = f"images/{s}"
        doc.setdefault("train", f"images/{splits[0]}")
        doc.setdefault("val", f"images/{splits[-1]}")
    doc["nc"] = len(names)
    doc["names"] = dict(enumerate(names))
    if kpt_count:
        doc["kpt_shape"] = [kpt_count, 3]
    return doc
