"""Label Studio's JSON export in and out (a list of tasks with `annotations` and `predictions`).

Results are read with the Label Studio layer's own mapping (`parse_results`, percent -> pixels),
and boxes and polygons are written with its prediction builders, so the import, the plugin and
the connector agree on geometry. Task `annotations` become human annotations, `predictions`
model predictions (their `model_version` kept).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

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
    scalar_properties,
)
from lensdb.labelstudio.labelconfig import Control
from lensdb.labelstudio.mapping import box_result, parse_results, pct, polygon_results

BOX = Control("label", "rectanglelabels", "image")
POLYGON = Control("polygon", "polygonlabels", "image")
KEYPOINT = Control("kp", "keypointlabels", "image")
IMAGE_KEY = "image"
# Label Studio prefixes uploaded file names with 8 hex digits and a dash.
_UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}-")


def results(lab: Labeling, width: float, height: float) -> list[dict]:
    """A labeling as Label Studio results (percent of the image), region ids b0, p0, k0..."""
    out: list[dict] = []
    for k, b in enumerate(lab.boxes):
        ent = {
            "_uniqueid": f"b{k}",
            "_label": b.label,
            "_coordinates": {"x": b.x, "y": b.y, "width": b.width, "height": b.height},
        }
        if b.score is not None:
            ent["score"] = b.score
        out.append(box_result(ent, width, height, BOX, readonly=False))
    for k, p in enumerate(lab.polygons):
        ent = {
            "_uniqueid": f"p{k}",
            "_label": p.label,
            "_vertices": [[list(pt) for pt in ring] for ring in p.rings],
        }
        if p.score is not None:
            ent["score"] = p.score
        out.extend(polygon_results(ent, width, height, POLYGON, readonly=False))
    for k, kp in enumerate(lab.keypoints):
        r: dict[str, Any] = {
            "id": f"k{k}",
            "from_name": KEYPOINT.name,
            "to_name": KEYPOINT.to_name,
            "type": KEYPOINT.type,
            "original_width": width,
            "original_height": height,
            "image_rotation": 0,
            "value": {
                "x": pct(kp.x, width),
                "y": pct(kp.y, height),
                "width": 0.5,
                "keypointlabels": [kp.label],
            },
        }
        if kp.score is not None:
            r["score"] = kp.score
        out.append(r)
    return out


def label_config(labels: list[str], keypoints: list[str]) -> str:
    """A labeling config whose control names match `results` (save it next to the export)."""

    def tags(values: list[str]) -> str:
        return "".join(f"<Label value={quoteattr(v)}/>" for v in values)

    parts = [
        "<View>",
        f'  <Image name="image" value="${IMAGE_KEY}"/>',
        f'  <RectangleLabels name="{BOX.name}" toName="image">{tags(labels)}</RectangleLabels>',
        f'  <PolygonLabels name="{POLYGON.name}" toName="image">{tags(labels)}</PolygonLabels>',
    ]
    if keypoints:
        parts.append(
            f'  <KeyPointLabels name="{KEYPOINT.name}" toName="image">{tags(keypoints)}'
            "</KeyPointLabels>"
        )
    return "\n".join([*parts, "</View>"]) + "\n"


# ---- reading ----------------------------------------------------------------------------------


def _find_image(images_dir: Path, ref: str) -> Path | None:
    name = ref.split("?d=")[-1] if "?d=" in ref else ref
    base = Path(name.split("?")[0]).name
    for candidate in (images_dir / name.lstrip("/"), images_dir / base):
        if candidate.is_file():
            return candidate
    stripped = _UPLOAD_PREFIX.sub("", base)
    if stripped != base and (images_dir / stripped).is_file():
        return images_dir / stripped
    return None


def read(path: Path, images_dir: Path | None, sizes: Any) -> Dataset:
    """Parse a Label Studio JSON export; `sizes(path)` gives an image's (width, height)."""
    try:
        doc = json.loads(path.read_bytes())
    except json.JSONDecodeError as e:
        raise FormatError(path, f"line {e.lineno} column {e.colno}", e.msg) from None
    except OSError as e:
        raise FormatError(path, "file", e.strerror or str(e)) from None
    tasks = [doc] if isinstance(doc, dict) else doc
    if not isinstance(tasks, list):
        raise FormatError(path, "top level", "expected a list of tasks")
    folder = images_dir if images_dir is not None else path.parent
    data = Dataset(source=str(path))
    labels: dict[str, None] = {}
    skipped_ids = 0
    for i, task in enumerate(tasks):
        where = f"[{i}]"
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            raise FormatError(path, f"{where}.data", "a task is an object with a 'data' object")
        ref = task["data"].get(IMAGE_KEY)
        if not isinstance(ref, str):
            ref = next(
                (v for v in task["data"].values() if isinstance(v, str) and "." in v[-5:]), None
            )
        if not isinstance(ref, str):
            raise FormatError(path, f"{where}.data.{IMAGE_KEY}", "missing: no image to import")
        file = _find_image(folder, ref)
        if file is None:
            raise FormatError(path, f"{where}.data.{IMAGE_KEY}", f"{ref!r} not found in {folder}")
        size = sizes(file)
        labelings = []
        for kind, key in ((ANNOTATIONS, "annotations"), (PREDICTIONS, "predictions")):
            items = task.get(key) or []
            if not isinstance(items, list):
                raise FormatError(path, f"{where}.{key}", "expected a list")
            for j, item in enumerate(items):
                if isinstance(item, int) and not isinstance(item, bool):
                    skipped_ids += 1  # Label Studio's JSON export lists predictions by id
                    continue
                if not isinstance(item, dict) or not isinstance(item.get("result", []), list):
                    raise FormatError(path, f"{where}.{key}[{j}].result", "expected a list")
                if item.get("was_cancelled"):
                    continue
                lab = _labeling(path, f"{where}.{key}[{j}]", kind, item, size)
                labels.update((r.label, None) for r in (*lab.boxes, *lab.polygons))
                labelings.append(lab)
        props = scalar_properties(task["data"], skip={IMAGE_KEY})
        if isinstance(task.get("id"), int):
            props["ls_task_id"] = task["id"]
        data.images.append(
            ImageRecord(
                file_name=file.name,
                path=file,
                width=size[0],
                height=size[1],
                properties=props,
                labelings=tuple(labelings),
            )
        )
    data.categories = [Category(name, n + 1) for n, name in enumerate(labels)]
    if skipped_ids:
        data.notes.append(
            f"{skipped_ids} prediction(s) listed only by id (Label Studio's JSON export does so) "
            "were not imported; their regions are in Label Studio's task API"
        )
    return data


def _labeling(path: Path, where: str, kind: str, item: dict, size: tuple[float, float]) -> Labeling:
    try:
        content = parse_results(item.get("result") or [])
    except (TypeError, AttributeError) as e:
        raise FormatError(path, f"{where}.result", f"cannot be read: {e}") from None
    boxes, polygons, keypoints = [], [], []
    default_score = item.get("score") if isinstance(item.get("score"), int | float) else None
    for r in content.regions:
        label = r.labels[0] if r.labels else ""
        score = r.score if isinstance(r.score, int | float) else default_score
        try:
            if r.kind == "box":
                p = r.box_pixels(size)
                if p["width"] <= 0 or p["height"] <= 0:
                    raise ValueError("width and height must be > 0")
                boxes.append(Box(label, p["x"], p["y"], p["width"], p["height"], score, r.id))
            elif r.kind == "polygon":
                pts = r.polygon_pixels(size)
                if len(pts) >= 3:
                    polygons.append(Polygon(label, (tuple(map(tuple, pts)),), score, r.id))
            else:
                x, y = r.point_pixels(size)
                keypoints.append(Keypoint(label, x, y, score=score, instance=r.id))
        except (ValueError, TypeError) as e:
            raise FormatError(path, f"{where}.result (region {r.id})", str(e)) from None
    author = item.get("completed_by")
    if isinstance(author, dict):
        author = author.get("email") or author.get("id")
    name = str(item["id"]) if kind == ANNOTATIONS and "id" in item else ""
    if kind == PREDICTIONS:
        name = str(item.get("model_version") or "")
    return Labeling(
        kind=kind,
        boxes=tuple(boxes),
        polygons=tuple(polygons),
        keypoints=tuple(keypoints),
        name=name,
        author=str(author) if author is not None else "",
        created_at=item.get("created_at"),
        updated_at=item.get("updated_at"),
        properties=content.properties,
    )


# ---- writing ----------------------------------------------------------------------------------


def task(rec: ImageRecord, image_ref: str, kinds: set[str]) -> dict[str, Any]:
    """One image as a task Label Studio's import takes as is."""
    w, h = float(rec.width or 0), float(rec.height or 0)
    out: dict[str, Any] = {
        "data": {
            IMAGE_KEY: image_ref,
            **{k: v for k, v in rec.properties.items() if k != IMAGE_KEY},
        },
        "meta": {"lensdb": {"uniqueid": rec.uniqueid}},
    }
    anns, preds = [], []
    for lab in rec.labelings:
        if lab.kind not in kinds:
            continue
        res = results(lab, w, h)
        if lab.kind == ANNOTATIONS:
            anns.append({"result": res, "ground_truth": False})
        else:
            preds.append({"model_version": lab.name or "lensdb", "result": res})
    if anns:
        out["annotations"] = anns
    if preds:
        out["predictions"] = preds
    return out
