"""Label Studio results <-> lensdb regions, as pure functions.

Label Studio stores region geometry in percent of the image (`original_width`/`original_height`
say which image size the annotator saw); lensdb stores pixels. Results that share an `id` describe
one region (a per-region TextArea or Choices repeats the region's id), so they are merged here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from lensdb.labelstudio.labelconfig import REGION_CONTROLS, Control

# Per-control values that become properties of the annotation (or of a region, when per-region).
SCALAR_TYPES = {
    "choices": "LS_choices_",
    "textarea": "LS_text_",
    "rating": "LS_rating_",
    "number": "LS_number_",
}
_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


def property_name(result_type: str, from_name: str) -> str:
    """Property key for a choices/textarea/rating/number control, e.g. `LS_choices_sentiment`."""
    return SCALAR_TYPES[result_type] + _UNSAFE.sub("_", from_name)


def scalar_value(result_type: str, value: dict) -> Any:
    """The property value stored for one scalar result (choices as a JSON list, texts newline-joined)."""
    if result_type == "choices":
        return json.dumps(list(value.get("choices") or []))
    if result_type == "textarea":
        text = value.get("text") or []
        return "\n".join(text) if isinstance(text, list) else str(text)
    if result_type == "rating":
        return value.get("rating")
    return value.get("number")


def pct(px: float, size: float) -> float:
    return 100.0 * px / size


def px(percent: float, size: float) -> float:
    return percent * size / 100.0


@dataclass
class Region:
    """One Label Studio region with geometry in percent, plus what other results say about it."""

    id: str
    kind: str  # "box" | "polygon" | "keypoint"
    type: str  # Label Studio result type, e.g. "rectanglelabels"
    from_name: str
    to_name: str
    value: dict
    labels: list[str] = field(default_factory=list)
    original_width: float | None = None
    original_height: float | None = None
    score: float | None = None
    properties: dict[str, Any] = field(default_factory=dict)

    def size(self, fallback: tuple[float, float] | None) -> tuple[float, float]:
        w, h = self.original_width, self.original_height
        if not w or not h:
            if not fallback:
                raise ValueError(f"region {self.id}: image size unknown (no original_width/height)")
            w, h = fallback
        return float(w), float(h)

    def box_pixels(self, fallback: tuple[float, float] | None = None) -> dict[str, float]:
        w, h = self.size(fallback)
        v = self.value
        return {
            "x": px(float(v.get("x", 0)), w),
            "y": px(float(v.get("y", 0)), h),
            "width": px(float(v.get("width", 0)), w),
            "height": px(float(v.get("height", 0)), h),
        }

    def polygon_pixels(self, fallback: tuple[float, float] | None = None) -> list[list[float]]:
        w, h = self.size(fallback)
        return [[px(float(x), w), px(float(y), h)] for x, y in self.value.get("points") or []]

    def point_pixels(self, fallback: tuple[float, float] | None = None) -> tuple[float, float]:
        w, h = self.size(fallback)
        return px(float(self.value.get("x", 0)), w), px(float(self.value.get("y", 0)), h)

    @property
    def rotation(self) -> float:
        return float(self.value.get("rotation") or 0)


@dataclass
class AnnotationContent:
    """What an annotation's result list means for the database."""

    regions: list[Region] = field(default_factory=list)
    properties: dict[str, Any] = field(default_factory=dict)  # scalar controls not tied to a region
    ignored: list[dict] = field(
        default_factory=list
    )  # results with no database form (kept in LS_data)


def _labels_of(item: dict) -> list[str]:
    value = item.get("value") or {}
    for key in (item.get("type"), "labels", "rectanglelabels", "polygonlabels", "keypointlabels"):
        if key and isinstance(value.get(key), list):
            return [str(x) for x in value[key]]
    return []


def parse_results(result: list[dict] | dict | None) -> AnnotationContent:
    """Group an annotation's results into regions and annotation-level properties."""
    items = result if isinstance(result, list) else ([result] if result else [])
    content = AnnotationContent()
    by_id: dict[str, Region] = {}
    # Geometry first, so that attributes arriving earlier in the list still find their region.
    for item in items:
        rtype = str(item.get("type", "")).lower()
        kind = REGION_CONTROLS.get(rtype)
        if kind is None or "id" not in item:
            continue
        rid = str(item["id"])
        if rid in by_id:  # a repeated geometry result adds labels only
            by_id[rid].labels.extend(x for x in _labels_of(item) if x not in by_id[rid].labels)
            continue
        region = Region(
            id=rid,
            kind=kind,
            type=rtype,
            from_name=str(item.get("from_name", "")),
            to_name=str(item.get("to_name", "")),
            value=dict(item.get("value") or {}),
            labels=_labels_of(item),
            original_width=item.get("original_width"),
            original_height=item.get("original_height"),
            score=item.get("score"),
        )
        by_id[rid] = region
        content.regions.append(region)
    for item in items:
        rtype = str(item.get("type", "")).lower()
        if rtype in REGION_CONTROLS:
            continue
        region = by_id.get(str(item.get("id"))) if "id" in item else None
        value = item.get("value") or {}
        if rtype == "labels" and region is not None:
            region.labels.extend(x for x in _labels_of(item) if x not in region.labels)
        elif rtype in SCALAR_TYPES:
            target = region.properties if region is not None else content.properties
            target[property_name(rtype, str(item.get("from_name", "")))] = scalar_value(
                rtype, value
            )
        else:
            content.ignored.append(item)
    return content


# ---- lensdb objects -> Label Studio prediction results -------------------------------------------


def _label_key(control: Control) -> str | None:
    return control.type if control.type.endswith("labels") else None


def box_result(box: dict, width: float, height: float, control: Control, readonly: bool) -> dict:
    """A FindBoundingBox entity (with `_coordinates`, `_label`, `_uniqueid`) as a prediction result."""
    c = box["_coordinates"]
    value: dict[str, Any] = {
        "x": pct(c["x"], width),
        "y": pct(c["y"], height),
        "width": pct(c["width"], width),
        "height": pct(c["height"], height),
        "rotation": float(box.get("LS_rotation") or 0),
    }
    key = _label_key(control)
    if key:
        value[key] = [box["_label"]] if box.get("_label") else []
    return _result(box, control, "rectangle", value, width, height, readonly)


def polygon_results(
    poly: dict, width: float, height: float, control: Control, readonly: bool
) -> list[dict]:
    """A FindPolygon entity (with `_vertices`) as prediction results, one per polygon ring."""
    rings = poly.get("_vertices") or []
    out = []
    for i, ring in enumerate(rings):
        value: dict[str, Any] = {
            "points": [[pct(x, width), pct(y, height)] for x, y in ring],
            "closed": True,
        }
        key = _label_key(control)
        if key:
            value[key] = [poly["_label"]] if poly.get("_label") else []
        r = _result(poly, control, "polygon", value, width, height, readonly)
        if i:
            r["id"] = f"{r['id']}#{i}"
        out.append(r)
    return out


def _result(
    obj: dict, control: Control, base_type: str, value: dict, w: float, h: float, readonly: bool
) -> dict:
    out = {
        "id": str(obj.get("_uniqueid")),
        "from_name": control.name,
        "to_name": control.to_name,
        "type": control.type if control.type.startswith(base_type) else base_type,
        "original_width": w,
        "original_height": h,
        "image_rotation": 0,
        "value": value,
        "readonly": readonly,
    }
    score = obj.get("score", obj.get("confidence"))
    if isinstance(score, int | float):
        out["score"] = float(score)
    return out
