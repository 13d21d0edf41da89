"""Write a parsed `Dataset` into lensdb through the query language, in batch transactions.

The data model is the Label Studio layer's (`lensdb.labelstudio.queries`), so imported regions
show up in Label Studio syncs and on the browse page:
- images: `guid` = DATASET/FILE_NAME (the idempotency key), `dataset`, `file_name`,
  `imported_at` (a date: what `lensdb export --since` reads) and the format's image attributes;
- predictions: `_BoundingBox`/`_Polygon` on the image with a `label` and no `LS_annotation`, and
  `LS_keypoint` entities --LS_keypoint_image--> image;
- annotations (ground truth): the same regions, each with `LS_annotation`, `LS_id`, `LS_labels`,
  owned by one `LS_annotation` entity per image and labeling (--LS_annotation_region-->), that entity
  --LS_annotation_image--> image, with `LS_project_id` 0 and `LS_instance` "import";
- categories: entities of class `Category` (dataset, name, category_id, supercategory, keypoints),
  so exports keep the dataset's category ids and order.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lensdb import media
from lensdb.client import Client
from lensdb.formats.model import (
    ANNOTATIONS,
    Category,
    Dataset,
    FormatError,
    ImageRecord,
    Labeling,
)
from lensdb.labelstudio import queries as Q

CATEGORY_CLASS = "Category"
IMPORT_INSTANCE = "import"
BATCH = 100


def image_guid(dataset: str, file_name: str) -> str:
    """The idempotency key of an imported image: its file name within its dataset."""
    return f"{dataset}/{file_name}" if dataset else file_name


@dataclass
class ImportSummary:
    images: int = 0
    skipped: int = 0  # already in lensdb (same guid)
    boxes: int = 0
    polygons: int = 0
    keypoints: int = 0
    annotations: int = 0  # LS_annotation entities
    categories: int = 0
    batches: int = 0
    stored: int = 0  # images in committed batches (what stays if a later batch fails)
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [
            f"images added: {self.images}, already there: {self.skipped}",
            f"boxes: {self.boxes}, polygons: {self.polygons}, keypoints: {self.keypoints}, "
            f"annotations: {self.annotations}, categories: {self.categories}",
        ]
        return out + self.notes


# Bytes read from the start of a file for its size: JPEG's frame header comes after the
# EXIF and other application segments, each at most 64 KiB.
HEADER_BYTES = 1 << 16


class ImageSizes:
    """Image sizes read from file headers, each file once (readers and the check share it).

    Only the header is read and parsed here (JPEG and PNG without Pillow, `media.probe_header`;
    other formats with Pillow): lensdb decodes and checks every image when it is added, so
    Pillow parsing each header here too took a second 0.2 s per 5,000 images.
    """

    def __init__(self, source: str = "") -> None:
        self.source = source
        self.known: dict[Path, tuple[float, float]] = {}

    def __call__(self, path: Path, where: str = "") -> tuple[float, float]:
        if path not in self.known:
            info = self._read(path, where or path.name)
            self.known[path] = (float(info.width), float(info.height))
        return self.known[path]

    def _read(self, path: Path, where: str) -> media.ImageInfo:
        try:
            with path.open("rb") as f:
                head = f.read(HEADER_BYTES)
                info = media.probe_header(head)
                raw = head + f.read() if info is None else b""
        except OSError as e:
            raise FormatError(self.source, where, f"image {path}: {e.strerror}") from None
        if info is not None:
            return info
        try:
            return media.probe(raw)
        except Exception as e:
            raise FormatError(self.source, where, f"{path} is not a readable image: {e}") from None


def check_images(data: Dataset, sizes: ImageSizes) -> dict[str, tuple[float, float]]:
    """Every image's size, read from its header; a missing or unreadable file is a FormatError.

    Runs before anything is written, so that a dataset with a bad image imports nothing.
    The bytes are not kept (a large dataset need not fit in memory); batches read them again.
    """
    sizes.source = data.source
    out: dict[str, tuple[float, float]] = {}
    for rec in data.images:
        if rec.path is None:
            raise FormatError(data.source, rec.file_name, "no image file")
        if rec.file_name in out:
            raise FormatError(data.source, rec.file_name, "the same file name twice")
        out[rec.file_name] = sizes(rec.path, rec.file_name)
    return out


def _category_commands(dataset: str, categories: list[Category]) -> list[dict]:
    out = []
    for c in categories:
        props: dict[str, Any] = {
            "dataset": dataset,
            "name": c.name,
            "category_id": c.id,
            "supercategory": c.supercategory,
        }
        if c.keypoints:
            props["keypoints"] = json.dumps(list(c.keypoints))
        if c.skeleton:
            props["skeleton"] = json.dumps([list(p) for p in c.skeleton])
        out.append(
            {
                "AddEntity": {
                    "class": CATEGORY_CLASS,
                    "properties": props,
                    "if_not_found": {"dataset": ["==", dataset], "name": ["==", c.name]},
                }
            }
        )
    return out


def _date(iso: str | None) -> dict | None:
    return {"_date": iso} if iso else None


def _clean(props: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in props.items() if v is not None}


class _Refs:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> int:
        self.n += 1
        return self.n


def image_commands(
    rec: ImageRecord,
    guid: str,
    dataset: str,
    source: str,
    imported_at: str,
    ls_results: Callable[[Labeling, float, float], list[dict]],
    size: tuple[float, float],
    refs: Callable[[], int],
    summary: ImportSummary,
) -> list[dict]:
    """The commands adding one image and all its labelings (pure; the blob is sent alongside)."""
    img = refs()
    props = {
        **rec.properties,
        "guid": guid,
        "dataset": dataset,
        "file_name": rec.file_name,
        "imported_at": {"_date": imported_at},
        "import_source": source,
    }
    q: list[dict] = [
        {"AddImage": {"_ref": img, "properties": props, "if_not_found": {"guid": ["==", guid]}}}
    ]
    w, h = size
    for n, lab in enumerate(rec.labelings):
        common: dict[str, Any] = {"dataset": dataset, "source": source}
        ann_ref = None
        ann_id = ""
        if lab.kind == ANNOTATIONS:
            ann_ref = refs()
            ann_id = lab.name or f"import:{guid}#{n}"
            results = ls_results(lab, w, h)
            q.append(
                {
                    "AddEntity": {
                        "_ref": ann_ref,
                        "class": Q.ANNOTATION_CLASS,
                        "properties": _clean(
                            {
                                **lab.properties,
                                "LS_id": ann_id,
                                "LS_project_id": 0,
                                "LS_instance": IMPORT_INSTANCE,
                                "LS_completed_by": lab.author or source,
                                "LS_created_at": _date(lab.created_at or imported_at),
                                "LS_updated_at": _date(
                                    lab.updated_at or lab.created_at or imported_at
                                ),
                                "LS_result_count": len(results),
                                "LS_data": json.dumps({"id": ann_id, "result": results}),
                                **common,
                            }
                        ),
                        "connect": {"ref": img, "class": Q.ANNOTATION_IMAGE},
                    }
                }
            )
            summary.annotations += 1
        elif lab.name:
            common["model_version"] = lab.name

        link = (
            {"connect": {"ref": ann_ref, "class": Q.ANNOTATION_REGION, "direction": "in"}}
            if ann_ref is not None
            else {}
        )
        for k, b in enumerate(lab.boxes):
            p = _region_props(
                common,
                ann_id if ann_ref is not None else None,
                f"b{k}",
                "rectanglelabels",
                b.label,
                b.properties,
                b.score,
            )
            if b.instance is not None:
                p["instance"] = b.instance
            q.append(
                {
                    "AddBoundingBox": {
                        "image_ref": img,
                        "rectangle": {"x": b.x, "y": b.y, "width": b.width, "height": b.height},
                        "label": b.label,
                        "properties": p,
                        **link,
                    }
                }
            )
        for k, poly in enumerate(lab.polygons):
            p = _region_props(
                common,
                ann_id if ann_ref is not None else None,
                f"p{k}",
                "polygonlabels",
                poly.label,
                poly.properties,
                poly.score,
            )
            if poly.instance is not None:
                p["instance"] = poly.instance
            q.append(
                {
                    "AddPolygon": {
                        "image_ref": img,
                        "polygons": [[list(pt) for pt in ring] for ring in poly.rings],
                        "label": poly.label,
                        "properties": p,
                        **link,
                    }
                }
            )
        for k, kp in enumerate(lab.keypoints):
            p = _region_props(
                common,
                ann_id if ann_ref is not None else None,
                f"k{k}",
                "keypointlabels",
                kp.label,
                {},
                kp.score,
            )
            p.update(
                _clean(
                    {
                        "x": kp.x,
                        "y": kp.y,
                        "label": kp.label,
                        "visibility": kp.visibility,
                        "kp_index": kp.index,
                        "category": kp.category,
                        "instance": kp.instance,
                    }
                )
            )
            kref = refs()
            q.append(
                {
                    "AddEntity": {
                        "_ref": kref,
                        "class": Q.KEYPOINT_CLASS,
                        "properties": p,
                        "connect": {"ref": img, "class": Q.KEYPOINT_IMAGE},
                    }
                }
            )
            if ann_ref is not None:
                q.append(
                    {"AddConnection": {"class": Q.ANNOTATION_REGION, "src": ann_ref, "dst": kref}}
                )
        summary.boxes += len(lab.boxes)
        summary.polygons += len(lab.polygons)
        summary.keypoints += len(lab.keypoints)
    return q


def index_commands() -> list[dict]:
    """Indexes on the keys the import looks objects up by (status 2 when they exist already)."""
    return [
        {"CreateIndex": {"index_type": "entity", "class": cls, "property_key": key}}
        for cls, key in (("_Image", "guid"), (CATEGORY_CLASS, "name"))
    ]


def _region_props(
    common: dict[str, Any],
    ann_id: str | None,
    region_id: str,
    ls_type: str,
    label: str,
    extra: dict,
    score: float | None,
) -> dict[str, Any]:
    """A region's properties; with an annotation id, the LS_* keys Label Studio writes too."""
    p = {**extra, **common}
    _put(p, "score", score)
    if ann_id is not None:
        p.update(
            LS_id=region_id,
            LS_annotation=ann_id,
            LS_project_id=0,
            LS_type=ls_type,
            LS_labels=_labels_json(label),
        )
        _put(p, "LS_score", score)
    return _clean(p) if None in p.values() else p


def _put(props: dict[str, Any], key: str, value: object) -> None:
    """Set `key`, or remove it for None (a property that is absent)."""
    if value is None:
        props.pop(key, None)
    else:
        props[key] = value


@functools.lru_cache(maxsize=1024)
def _labels_json(label: str) -> str:
    """`LS_labels` of a region: a dataset has few labels and many regions."""
    return json.dumps([label])


def existing_guids(client: Client, guids: list[str]) -> set[str]:
    response, _ = client.query(
        [
            {
                "FindImage": {
                    "blobs": False,
                    "constraints": {"guid": ["in", guids]},
                    "results": {"list": ["guid"]},
                }
            }
        ]
    )
    return {e["guid"] for e in Q.entities(response, "FindImage")}


def batches(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def run_import(
    client: Client | None,
    data: Dataset,
    *,
    dataset: str,
    source: str,
    sizes: dict[str, tuple[float, float]],
    ls_results: Callable[[Labeling, float, float], list[dict]],
    batch_size: int = BATCH,
    dry_run: bool = False,
    progress: Callable[[int], None] = lambda n: None,
    summary: ImportSummary | None = None,
) -> ImportSummary:
    """Import `data` in transactions of `batch_size` images; images whose guid exists are skipped.

    With `dry_run`, nothing is written: the summary says what would be (a client, if given, is
    only asked which images exist already). `summary`, if given, is filled in as batches commit,
    so a caller that catches an error can say how much was stored before it.
    """
    summary = summary if summary is not None else ImportSummary()
    summary.notes.extend(data.notes)
    if client is not None and not dry_run:
        # The guid lookups (the pre-check and AddImage's if_not_found) would scan every image
        # without an index: 1,000 images took 1.7 s of 7 s before it (bench/formats_import.py).
        client.query(index_commands())
    imported_at = datetime.now(UTC).isoformat()
    first = True
    for chunk in batches(data.images, batch_size):
        guids = [image_guid(dataset, r.file_name) for r in chunk]
        have = existing_guids(client, guids) if client is not None else set()
        q: list[dict] = []
        payload: list[bytes] = []
        refs = _Refs()
        if first:
            q.extend(_category_commands(dataset, data.categories))
            first = False
        for rec, guid in zip(chunk, guids, strict=True):
            if guid in have:
                summary.skipped += 1
                continue
            q.extend(
                image_commands(
                    rec,
                    guid,
                    dataset,
                    source,
                    imported_at,
                    ls_results,
                    sizes[rec.file_name],
                    refs,
                    summary,
                )
            )
            assert rec.path is not None
            payload.append(rec.path.read_bytes())
            summary.images += 1
        if q and not dry_run and client is not None:
            client.query(q, payload)
            summary.batches += 1
            summary.stored += len(payload)
        progress(len(chunk))
    summary.categories = len(data.categories)
    return summary
