"""COCO (instances and person keypoints) in and out.

Read: `images`, `categories`, `annotations` with `bbox`, `segmentation` (polygons, or RLE masks
turned into polygons by tracing their outer contours with OpenCV), `keypoints` and `score`.
An annotation with a `score` is a model's prediction; one without is ground truth.
Written: a dataset file `COCO(file)` loads, or (predictions only) the results list that
`COCO.loadRes` and COCOeval take.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

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
    scalar_properties,
)

IMAGE_FIELDS = {"id", "file_name", "width", "height"}
_PLAIN_NUMBERS = frozenset({int, float})
ANN_FIELDS = {
    "id",
    "image_id",
    "category_id",
    "bbox",
    "segmentation",
    "keypoints",
    "num_keypoints",
    "score",
    "area",
}


def read(path: Path, images_dir: Path | None) -> Dataset:
    """Parse and check a COCO file completely; raise FormatError at the first problem."""
    try:
        doc = json.loads(path.read_bytes())
    except json.JSONDecodeError as e:
        raise FormatError(path, f"line {e.lineno} column {e.colno}", e.msg) from None
    except OSError as e:
        raise FormatError(path, "file", e.strerror or str(e)) from None
    if isinstance(doc, list):
        raise FormatError(
            path, "top level", "a results list has no images; import a file with 'images'"
        )
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list):
        raise FormatError(path, "images", "missing: a COCO file is an object with an 'images' list")
    folder = images_dir if images_dir is not None else path.parent
    data = Dataset(source=str(path))
    categories = _categories(path, doc.get("categories") or [])
    data.categories = list(categories.values())
    images: dict[Any, dict] = {}
    for i, img in enumerate(doc["images"]):
        where = f"images[{i}]"
        if not isinstance(img, dict):
            raise FormatError(path, where, "expected an object")
        if "id" not in img:
            raise FormatError(path, f"{where}.id", "missing")
        name = img.get("file_name")
        if not isinstance(name, str) or not name:
            raise FormatError(path, f"{where}.file_name", "missing or not a string")
        if img["id"] in images:
            raise FormatError(path, f"{where}.id", f"duplicate image id {img['id']!r}")
        images[img["id"]] = {"img": img, "where": where, "ann": [], "pred": [], "kps": [[], []]}
    anns = doc.get("annotations") or []
    if not isinstance(anns, list):
        raise FormatError(path, "annotations", "expected a list")
    for i, ann in enumerate(anns):
        _annotation(path, f"annotations[{i}]", ann, images, categories, data)
    for entry in images.values():
        img = entry["img"]
        props = scalar_properties(img, skip=IMAGE_FIELDS)
        props["coco_id"] = img["id"]
        labelings = []
        for kind, regions, kps in (
            (ANNOTATIONS, entry["ann"], entry["kps"][0]),
            (PREDICTIONS, entry["pred"], entry["kps"][1]),
        ):
            if regions or kps:
                labelings.append(
                    Labeling(
                        kind=kind,
                        boxes=tuple(r for r in regions if isinstance(r, Box)),
                        polygons=tuple(r for r in regions if isinstance(r, Polygon)),
                        keypoints=tuple(kps),
                    )
                )
        data.images.append(
            ImageRecord(
                file_name=img["file_name"],
                path=folder / img["file_name"],
                width=img.get("width"),
                height=img.get("height"),
                properties=props,
                labelings=tuple(labelings),
            )
        )
    return data


def _categories(path: Path, cats: object) -> dict[Any, Category]:
    if not isinstance(cats, list):
        raise FormatError(path, "categories", "expected a list")
    out: dict[Any, Category] = {}
    for i, c in enumerate(cats):
        where = f"categories[{i}]"
        if not isinstance(c, dict) or "id" not in c or not isinstance(c.get("name"), str):
            raise FormatError(path, where, "expected an object with 'id' and a string 'name'")
        if not isinstance(c["id"], int) or isinstance(c["id"], bool):
            raise FormatError(path, f"{where}.id", f"expected an integer, got {c['id']!r}")
        kps = c.get("keypoints") or []
        skel = c.get("skeleton") or []
        out[c["id"]] = Category(
            name=c["name"],
            id=c["id"],
            supercategory=str(c.get("supercategory") or ""),
            keypoints=tuple(str(k) for k in kps),
            skeleton=tuple(tuple(int(v) for v in pair) for pair in skel),
        )
    return out


def _annotation(
    path: Path, where: str, ann: object, images: dict, categories: dict, data: Dataset
) -> None:
    if not isinstance(ann, dict):
        raise FormatError(path, where, "expected an object")
    entry = images.get(ann.get("image_id"))
    if entry is None:
        raise FormatError(path, f"{where}.image_id", f"no image with id {ann.get('image_id')!r}")
    cat = categories.get(ann.get("category_id"))
    if cat is None:
        raise FormatError(
            path, f"{where}.category_id", f"no category with id {ann.get('category_id')!r}"
        )
    score = ann.get("score")
    if score is not None:
        score = number(path, f"{where}.score", score)
    instance = str(ann["id"]) if "id" in ann else where
    props = scalar_properties(ann, skip=ANN_FIELDS)
    props["category_id"] = cat.id
    if "area" in ann:
        props["area"] = number(path, f"{where}.area", ann["area"])
    regions = entry["pred"] if score is not None else entry["ann"]
    if ann.get("bbox") is not None:
        bbox = ann["bbox"]
        if not isinstance(bbox, list) or len(bbox) != 4:
            raise FormatError(path, f"{where}.bbox", "expected [x, y, width, height]")
        if all(type(v) in _PLAIN_NUMBERS for v in bbox):  # (no error text to build)
            x, y, w, h = (float(v) for v in bbox)
        else:
            x, y, w, h = (number(path, f"{where}.bbox[{k}]", v) for k, v in enumerate(bbox))
        if w <= 0 or h <= 0:
            raise FormatError(path, f"{where}.bbox", f"width and height must be > 0, got {bbox}")
        regions.append(Box(cat.name, x, y, w, h, score, instance, props))
    seg = ann.get("segmentation")
    rings: list[tuple[tuple[float, float], ...]] = []
    if isinstance(seg, list):
        for k, flat in enumerate(seg):
            f = f"{where}.segmentation[{k}]"
            if not isinstance(flat, list) or len(flat) % 2 or len(flat) < 6:
                raise FormatError(path, f, "a polygon is a flat list of at least 3 x, y pairs")
            vals = [number(path, f, v) for v in flat]
            rings.append(tuple(zip(vals[0::2], vals[1::2], strict=True)))
    elif isinstance(seg, dict):
        rings = rle_polygons(path, f"{where}.segmentation", seg)
        if not rings:
            data.notes.append(
                f"{path}: {where}: its RLE mask holds no region of 3 or more points; "
                "imported without a polygon"
            )
    elif seg is not None:
        raise FormatError(path, f"{where}.segmentation", "expected a list of polygons or an RLE")
    if rings:
        regions.append(Polygon(cat.name, tuple(rings), score, instance, props))
    kp = ann.get("keypoints")
    if kp:
        if not isinstance(kp, list) or len(kp) % 3:
            raise FormatError(path, f"{where}.keypoints", "expected a flat list of x, y, v")
        if cat.keypoints and len(kp) != 3 * len(cat.keypoints):
            raise FormatError(
                path,
                f"{where}.keypoints",
                f"{len(kp) // 3} points, but category {cat.name!r} names {len(cat.keypoints)}",
            )
        target = entry["kps"][1 if score is not None else 0]
        for k in range(len(kp) // 3):
            f = f"{where}.keypoints[{3 * k}]"
            x, y, v = (number(path, f, val) for val in kp[3 * k : 3 * k + 3])
            if v == 0:
                continue  # not labelled
            name = cat.keypoints[k] if cat.keypoints else f"kp{k}"
            target.append(Keypoint(name, x, y, int(v), k, cat.name, instance, score))


def rle_polygons(path: Path, where: str, rle: dict) -> list[tuple[tuple[float, float], ...]]:
    """The outer contours of an RLE mask (pycocotools decodes it; OpenCV traces the contours).

    OpenCV's findContours is the usual tool for this and is already a dependency of the
    aperturedb SDK and Label Studio's SDK; scikit-image's sub-pixel contours would add SciPy.
    """
    import cv2
    import numpy as np
    from pycocotools import mask as maskutils

    size = rle.get("size")
    if not isinstance(size, list) or len(size) != 2 or "counts" not in rle:
        raise FormatError(path, where, "an RLE mask needs 'size' [h, w] and 'counts'")
    try:
        h, w = int(size[0]), int(size[1])
        coded = maskutils.frPyObjects(rle, h, w) if isinstance(rle["counts"], list) else rle
        if isinstance(coded.get("counts"), str):
            coded = {"size": [h, w], "counts": coded["counts"].encode()}
        mask = maskutils.decode(coded)
    except Exception as e:  # pycocotools raises plain exceptions on bad counts
        raise FormatError(path, where, f"cannot decode the RLE mask: {e}") from None
    contours, _ = cv2.findContours(
        np.ascontiguousarray(mask, dtype=np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
    )
    return [
        tuple((float(x), float(y)) for x, y in c.reshape(-1, 2)) for c in contours if len(c) >= 3
    ]


# ---- writing ----------------------------------------------------------------------------------


def _bounds(rings: Iterable[Iterable[tuple[float, float]]]) -> list[float]:
    pts = [p for r in rings for p in r]
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    return [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]


def _area(rings: Iterable[Iterable[tuple[float, float]]]) -> float:
    total = 0.0
    for r in rings:
        r = list(r)
        total += abs(sum(r[k][0] * r[k - 1][1] - r[k - 1][0] * r[k][1] for k in range(len(r))))
    return total / 2


def image_id(record: ImageRecord, index: int) -> int:
    """COCO's image id: the one it was imported with, else its position (1-based)."""
    coco_id = record.properties.get("coco_id")
    return coco_id if isinstance(coco_id, int) and not isinstance(coco_id, bool) else index + 1


def build(
    images: list[tuple[ImageRecord, str]], categories: list[Category], kinds: set[str]
) -> dict[str, Any]:
    """A COCO dataset dict from (record, file name written) pairs; instances merge box,
    polygon and keypoints that share an instance id."""
    cat_id = {c.name: c.id for c in categories}
    cat_by_name = {c.name: c for c in categories}
    out_images, out_anns = [], []
    for n, (rec, name) in enumerate(images):
        iid = image_id(rec, n)
        entry = {"id": iid, "file_name": name, "width": rec.width, "height": rec.height}
        if rec.url:
            entry["coco_url"] = rec.url
        for k, v in rec.properties.items():
            if k not in entry and k not in ("coco_id", "guid", "file_name"):
                entry[k] = v
        out_images.append(entry)
        for lab in rec.labelings:
            if lab.kind not in kinds:
                continue
            for inst in _instances(lab):
                label = inst["label"]
                ann: dict[str, Any] = {
                    "id": len(out_anns) + 1,
                    "image_id": iid,
                    "category_id": cat_id[label],
                    "iscrowd": int(inst["props"].get("iscrowd", 0) or 0),
                }
                rings = inst.get("rings")
                box = inst.get("box")
                if box is not None:
                    ann["bbox"] = [box.x, box.y, box.width, box.height]
                elif rings:
                    ann["bbox"] = _bounds(rings)
                if rings:
                    ann["segmentation"] = [[c for p in r for c in p] for r in rings]
                else:
                    ann["segmentation"] = []
                if "area" in inst["props"]:
                    ann["area"] = inst["props"]["area"]
                elif rings:
                    ann["area"] = _area(rings)
                elif "bbox" in ann:
                    ann["area"] = ann["bbox"][2] * ann["bbox"][3]
                kps = inst.get("keypoints")
                if kps:
                    names = cat_by_name[label].keypoints
                    slots = max(len(names), max((k.index or 0) for k in kps) + 1)
                    flat = [0.0] * (3 * slots)
                    for j, k in enumerate(kps):
                        at = k.index if k.index is not None else j
                        flat[3 * at : 3 * at + 3] = [k.x, k.y, k.visibility]
                    ann["keypoints"] = flat
                    ann["num_keypoints"] = len(kps)
                if inst["score"] is not None:
                    ann["score"] = inst["score"]
                out_anns.append(ann)
    return {
        "info": {"description": "exported by lensdb"},
        "images": out_images,
        "annotations": out_anns,
        "categories": [
            {
                "id": c.id,
                "name": c.name,
                "supercategory": c.supercategory,
                **({"keypoints": list(c.keypoints)} if c.keypoints else {}),
                **({"skeleton": [list(p) for p in c.skeleton]} if c.skeleton else {}),
            }
            for c in categories
        ],
    }


def _instances(lab: Labeling) -> list[dict[str, Any]]:
    """Regions of one labeling grouped into COCO annotations by instance id."""
    groups: dict[str, dict[str, Any]] = {}
    order: list[dict[str, Any]] = []

    def slot(instance: str | None, label: str) -> dict[str, Any]:
        if instance is not None and (instance, label) in groups:
            return groups[(instance, label)]  # type: ignore[index]
        g: dict[str, Any] = {"label": label, "props": {}, "score": None}
        if instance is not None:
            groups[(instance, label)] = g  # type: ignore[index]
        order.append(g)
        return g

    for b in lab.boxes:
        g = slot(b.instance, b.label)
        g["box"], g["score"] = b, b.score
        g["props"].update(b.properties)
    for p in lab.polygons:
        g = slot(p.instance, p.label)
        g["rings"] = p.rings
        g["score"] = g["score"] if g["score"] is not None else p.score
        g["props"] = {**p.properties, **g["props"]}
    for k in lab.keypoints:
        g = slot(k.instance, k.category or k.label)
        g.setdefault("keypoints", []).append(k)
        g["score"] = g["score"] if g["score"] is not None else k.score
    return order


def results(coco: dict[str, Any]) -> list[dict[str, Any]]:
    """The results list of a dataset dict (what loadRes takes): annotations with a score."""
    out = []
    for a in coco["annotations"]:
        r = {k: a[k] for k in ("image_id", "category_id", "bbox", "score") if k in a}
        if a.get("segmentation"):
            r["segmentation"] = a["segmentation"]
        if a.get("keypoints"):
            r["keypoints"] = a["keypoints"]
        r.setdefault("score", 1.0)
        out.append(r)
    return out
