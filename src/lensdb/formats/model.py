"""The one in-memory form every format is read into and written from.

Readers (coco, yolo, voc, lsjson) turn a source into a `Dataset`, checking all of it before
anything is written, so that a malformed file imports nothing. Writers take the same records,
read back from lensdb by `lensdb.formats.exporter`. Coordinates are pixels, as floats.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ANNOTATIONS = "annotations"
PREDICTIONS = "predictions"
KINDS = (ANNOTATIONS, PREDICTIONS)


class FormatError(ValueError):
    """A source that cannot be imported; names the file and the field or line."""

    def __init__(self, file: str | Path, where: str, problem: str) -> None:
        self.file, self.where, self.problem = str(file), where, problem
        super().__init__(f"{file}: {where}: {problem}")


@dataclass(frozen=True)
class Box:
    label: str
    x: float
    y: float
    width: float
    height: float
    score: float | None = None
    instance: str | None = None  # ties a box to its polygon and keypoints (a COCO annotation id)
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Polygon:
    label: str
    rings: tuple[tuple[tuple[float, float], ...], ...]
    score: float | None = None
    instance: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Keypoint:
    label: str  # the keypoint's name (COCO: category's keypoints[i]; Label Studio: its label)
    x: float
    y: float
    visibility: int = 2
    index: int | None = None  # position in the category's keypoint list
    category: str | None = None
    instance: str | None = None
    score: float | None = None


@dataclass(frozen=True)
class Labeling:
    """One set of regions on one image: a human annotation, or one model's predictions."""

    kind: str  # ANNOTATIONS | PREDICTIONS
    boxes: tuple[Box, ...] = ()
    polygons: tuple[Polygon, ...] = ()
    keypoints: tuple[Keypoint, ...] = ()
    name: str = ""  # the annotation's id or the model version
    author: str = ""
    created_at: str | None = None  # ISO 8601
    updated_at: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)  # annotation-level values

    def count(self) -> int:
        return len(self.boxes) + len(self.polygons) + len(self.keypoints)


@dataclass(frozen=True)
class ImageRecord:
    file_name: str  # the name the dataset knows the image by (relative path in its folder)
    path: Path | None  # where its bytes are read from (import), None when exported as a link
    width: float | None = None
    height: float | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    labelings: tuple[Labeling, ...] = ()
    uniqueid: str | None = None  # lensdb's id, on export
    url: str | None = None  # export with links


@dataclass(frozen=True)
class Category:
    name: str
    id: int
    supercategory: str = ""
    keypoints: tuple[str, ...] = ()
    skeleton: tuple[tuple[int, int], ...] = ()


@dataclass
class Dataset:
    """What a reader found: images in order, categories, and what it could not take."""

    source: str
    images: list[ImageRecord] = field(default_factory=list)
    categories: list[Category] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # e.g. RLE masks that gave no polygon

    def category(self, name: str) -> Category | None:
        return next((c for c in self.categories if c.name == name), None)


def number(file: str | Path, where: str, value: object) -> float:
    """A JSON/XML/text number as a float, or a FormatError naming where it was."""
    if isinstance(value, bool):
        raise FormatError(file, where, f"expected a number, got {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise FormatError(file, where, f"expected a number, got {value!r}")


_SCALARS = (str, int, float)  # (bool is an int)


def scalar_properties(values: dict[str, Any], skip: set[str] = frozenset()) -> dict[str, Any]:
    """The values lensdb can store as properties: strings, numbers, booleans (others left out)."""
    return {
        k: v
        for k, v in values.items()
        if k not in skip and isinstance(v, _SCALARS) and not k.startswith("_")
    }
