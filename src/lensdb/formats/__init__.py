"""Datasets in and out: COCO, YOLO, Pascal VOC and Label Studio JSON (issue 13).

Every write and read goes through the query language via `lensdb.client` (in-process or over
TCP), into the Label Studio layer's data model; see docs/formats.md for the mapping per format.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from lensdb.formats.model import ANNOTATIONS, KINDS, PREDICTIONS, Dataset, FormatError

FORMATS = ("coco", "yolo", "voc", "labelstudio")

__all__ = ["ANNOTATIONS", "FORMATS", "KINDS", "PREDICTIONS", "FormatError", "read_source"]


def read_source(
    fmt: str, source: Path, images: Path | None, as_kind: str, sizes: object
) -> Dataset:
    """Parse and check SOURCE in format `fmt`; `as_kind` 'auto' keeps the format's own split of
    annotations and predictions, else every labeling becomes that kind."""
    from lensdb.formats import coco, lsjson, voc, yolo

    default = ANNOTATIONS if as_kind == "auto" else as_kind
    if fmt == "coco":
        data = coco.read(source, images)
    elif fmt == "yolo":
        data = yolo.read(source, sizes, default)  # type: ignore[arg-type]
    elif fmt == "voc":
        data = voc.read(source, images, default)
    elif fmt == "labelstudio":
        data = lsjson.read(source, images, sizes)
    else:
        raise ValueError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
    if as_kind != "auto":
        data.images = [
            replace(r, labelings=tuple(replace(lab, kind=as_kind) for lab in r.labelings))
            for r in data.images
        ]
    return data
