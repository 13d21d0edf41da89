"""Query-language builders for Label Studio <-> lensdb. Pure: they return JSON commands, never send them.

Data written for an annotation (names shared with the ApertureDB fork of Label Studio where it has one):
- entity `LS_annotation` (`LS_id` = Label Studio annotation id) --LS_annotation_image--> its `_Image`
- `_BoundingBox` / `_Polygon` on that image, and entity `LS_keypoint` --LS_keypoint_image--> image,
  each reached from the annotation by an `LS_annotation_region` connection and carrying its
  Label Studio region id in `LS_id` and the annotation id in `LS_annotation`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from lensdb.errors import command_answer
from lensdb.labelstudio.mapping import AnnotationContent, Region

ANNOTATION_CLASS = "LS_annotation"
KEYPOINT_CLASS = "LS_keypoint"
ANNOTATION_IMAGE = "LS_annotation_image"
ANNOTATION_REGION = "LS_annotation_region"
KEYPOINT_IMAGE = "LS_keypoint_image"
UNIQUEID = "_uniqueid"


@dataclass
class AnnotationRecord:
    """The parts of a Label Studio annotation that are written to the database."""

    id: int
    project_id: int
    task_id: int
    result: list[dict]
    project_title: str = ""
    completed_by: str = ""
    updated_by: str = ""
    created_at: str | None = None  # ISO 8601
    updated_at: str | None = None
    was_cancelled: bool = False
    ground_truth: bool = False
    lead_time: float | None = None
    document: dict = field(default_factory=dict)  # the serialized annotation, stored as LS_data
    instance: str = ""  # id of the Label Studio installation (see annotation_scope)


def annotation_scope(project_id: int, instance: str = "") -> dict:
    """Constraints naming one project's annotations of one Label Studio installation.

    Annotation and project ids are only unique within one Label Studio database; `instance` tells
    installations sharing a lensdb apart (empty: match on project only).
    """
    scope: dict = {"LS_project_id": ["==", project_id]}
    if instance:
        scope["LS_instance"] = ["==", instance]
    return scope


def entities(response: list[dict], command: str) -> list[dict]:
    """The entities the (first) command of this name returned: answers are read by name, not position."""
    return (command_answer(response, command) or {}).get("entities") or []


def _date(iso: str | None) -> dict | None:
    return {"_date": iso} if iso else None


def _clean(props: dict[str, Any]) -> dict[str, Any]:
    # The query language has no null property value: leave such keys out.
    return {k: v for k, v in props.items() if v is not None}


# ---- source storage --------------------------------------------------------------------------------


def _image_selection(constraints: dict | None, key_property: str) -> dict[str, Any]:
    """The FindImage body that selects a source storage's images (those with a key)."""
    find: dict[str, Any] = {"blobs": False}
    if constraints:
        find["constraints"] = dict(constraints)
    if key_property != UNIQUEID:
        # Images without the key property cannot become tasks.
        find["constraints"] = {**find.get("constraints", {}), key_property: ["!=", None]}
    return find


def list_images_query(
    constraints: dict | None, key_property: str, limit: int, offset: int
) -> list[dict]:
    """One page of the images a source storage selects, with their keys."""
    find = {
        **_image_selection(constraints, key_property),
        "uniqueids": True,
        "limit": limit,
        "offset": offset,
    }
    if key_property != UNIQUEID:
        find["results"] = {"list": [key_property]}
    return [{"FindImage": find}]


@dataclass(frozen=True)
class SelectionCount:
    """How many images a source storage selects and how many model regions come with them."""

    images: int
    boxes: int = 0
    polygons: int = 0

    @property
    def predictions(self) -> int:
        return self.boxes + self.polygons


def selection_count_query(
    constraints: dict | None, key_property: str, predictions: bool, pred_constraints: dict | None
) -> list[dict]:
    """Count what a sync of these settings would bring: images, and model boxes and polygons on them."""
    query: list[dict] = [
        {
            "FindImage": {
                **_image_selection(constraints, key_property),
                "_ref": 1,
                "results": {"count": True},
            }
        }
    ]
    if predictions:
        regions = {
            "image_ref": 1,
            "blobs": False,
            "results": {"count": True},
            "constraints": {**(pred_constraints or {}), "LS_annotation": ["==", None]},
        }
        query += [{"FindBoundingBox": dict(regions)}, {"FindPolygon": dict(regions)}]
    return query


def parse_selection_count(response: list[dict]) -> SelectionCount:
    """The answer to `selection_count_query`, read by command name."""
    counts: dict[str, int] = {}
    for item in response:
        for name, body in item.items():
            counts[name] = int((body or {}).get("count") or 0)
    return SelectionCount(
        images=counts.get("FindImage", 0),
        boxes=counts.get("FindBoundingBox", 0),
        polygons=counts.get("FindPolygon", 0),
    )


def image_details_query(
    uniqueids: list[str],
    properties: list[str],
    predictions: bool,
    pred_constraints: dict | None,
    annotations_scope: dict | None = None,
) -> list[dict]:
    """Sizes and requested properties of images, their model regions, and (given a scope such as
    `annotation_scope(...)`) the annotations exported for them; `parse_image_details` reads it."""
    listed = sorted({"width", "height", *properties} - {UNIQUEID})
    query: list[dict] = [
        {
            "FindImage": {
                "_ref": 1,
                "blobs": False,
                "uniqueids": True,
                "constraints": {UNIQUEID: ["in", list(uniqueids)]},
                "results": {"list": listed},
            }
        },
    ]
    if annotations_scope is not None:
        query.append(
            {
                "FindEntity": {
                    "with_class": ANNOTATION_CLASS,
                    "is_connected_to": {"ref": 1, "connection_class": ANNOTATION_IMAGE},
                    "constraints": annotations_scope,
                    "results": {"list": ["LS_id", "LS_data"]},
                    "group_by_source": True,
                }
            }
        )
    if predictions:
        # Regions written for annotations come back as annotations, not as predictions.
        region_constraints = {**(pred_constraints or {}), "LS_annotation": ["==", None]}
        common = {
            "image_ref": 1,
            "blobs": False,
            "labels": True,
            "uniqueids": True,
            "group_by_source": True,
            "constraints": region_constraints,
            "results": {"list": ["LS_rotation", "score", "confidence"]},
        }
        query.append({"FindBoundingBox": {**common, "coordinates": True}})
        query.append({"FindPolygon": {**common, "vertices": True}})
    return query


@dataclass(frozen=True)
class ImageDetails:
    """The answer to `image_details_query`, keyed by image _uniqueid."""

    images: dict[str, dict]
    boxes: dict[str, list[dict]]
    polygons: dict[str, list[dict]]
    annotations: dict[str, list[dict]]


def parse_image_details(response: list[dict]) -> ImageDetails:
    """Read an `image_details_query` answer by command name (each command appears at most once)."""
    found = {name: body for item in response for name, body in item.items()}

    def grouped(name: str) -> dict[str, list[dict]]:
        entities = (found.get(name) or {}).get("entities") or {}
        return entities if isinstance(entities, dict) else {}

    images = {e[UNIQUEID]: e for e in (found.get("FindImage") or {}).get("entities") or []}
    return ImageDetails(
        images=images,
        boxes=grouped("FindBoundingBox"),
        polygons=grouped("FindPolygon"),
        annotations=grouped("FindEntity"),
    )


def image_sizes_query(uniqueids: list[str]) -> list[dict]:
    """The blobs of images whose width/height properties are missing, to read their headers."""
    return [
        {
            "FindImage": {
                "constraints": {UNIQUEID: ["in", list(uniqueids)]},
                "blobs": True,
                "uniqueids": True,
            }
        }
    ]


def store_sizes_query(sizes: dict[str, tuple[int, int]]) -> list[dict]:
    """Write width/height read from image headers, so the next sync need not read the bytes again."""
    query: list[dict] = []
    for uid, (w, h) in sizes.items():
        ref = len(query) // 2 + 1
        query.append(
            {"FindImage": {"_ref": ref, "blobs": False, "constraints": {UNIQUEID: ["==", uid]}}}
        )
        query.append({"UpdateImage": {"ref": ref, "properties": {"width": w, "height": h}}})
    return query


def image_blob_query(uniqueid: str, as_jpeg: bool) -> list[dict]:
    find: dict[str, Any] = {
        "blobs": True,
        "constraints": {UNIQUEID: ["==", uniqueid]},
        "results": {"limit": 1},
    }
    if as_jpeg:
        find["as_format"] = "jpg"
    return [{"FindImage": find}]


# ---- target storage --------------------------------------------------------------------------------


def _region_props(region: Region, ann: AnnotationRecord) -> dict[str, Any]:
    props: dict[str, Any] = {
        "LS_id": region.id,
        "LS_annotation": str(ann.id),
        "LS_project_id": ann.project_id,
        "LS_from_name": region.from_name,
        "LS_type": region.type,
        "LS_labels": json.dumps(region.labels),
        "LS_score": region.score,
        **region.properties,
    }
    return _clean(props)


def _box_commands(
    region: Region, ann: AnnotationRecord, ref: int, size: tuple | None, new: bool = False
) -> list[dict]:
    p = region.box_pixels(size)
    rect = {k: round(v) for k, v in p.items()}
    rect["width"], rect["height"] = max(1, rect["width"]), max(1, rect["height"])
    v = region.value
    props = _region_props(region, ann)
    # Exact percent geometry and rotation ride along: the integer rectangle alone loses precision.
    props.update(
        LS_x=float(v.get("x", 0)),
        LS_y=float(v.get("y", 0)),
        LS_width=float(v.get("width", 0)),
        LS_height=float(v.get("height", 0)),
        LS_rotation=region.rotation,
    )
    label = region.labels[0] if region.labels else ""
    key = {"LS_id": ["==", region.id], "LS_annotation": ["==", str(ann.id)]}
    add = {
        "_ref": ref,
        "image_ref": 1,
        "rectangle": rect,
        "label": label,
        "properties": props,
        "if_not_found": key,
    }
    update = {
        "UpdateBoundingBox": {"ref": ref, "rectangle": rect, "label": label, "properties": props}
    }
    return _region_add("AddBoundingBox", add, update, ref, new)


def polygon_key(region: Region) -> str:
    """Region id plus a digest of its points: equal while the polygon keeps its shape.

    The query language cannot change a polygon's vertices (UpdatePolygon takes label and properties),
    so a reshaped polygon is replaced; one whose points are unchanged keeps its _uniqueid.
    """
    points = json.dumps(region.value.get("points") or [], separators=(",", ":"))
    return f"{region.id}:{hashlib.sha1(points.encode()).hexdigest()[:16]}"


def _polygon_commands(
    region: Region, ann: AnnotationRecord, ref: int, size: tuple | None, new: bool = False
) -> list[dict]:
    points = region.polygon_pixels(size)
    props = _region_props(region, ann)
    props["LS_points"] = json.dumps(region.value.get("points") or [])
    props["LS_shape"] = polygon_key(region)
    label = region.labels[0] if region.labels else ""
    key = {"LS_shape": ["==", props["LS_shape"]], "LS_annotation": ["==", str(ann.id)]}
    add = {
        "_ref": ref,
        "image_ref": 1,
        "polygons": [points],
        "label": label,
        "properties": props,
        "if_not_found": key,
    }
    update = {"UpdatePolygon": {"ref": ref, "label": label, "properties": props}}
    return _region_add("AddPolygon", add, update, ref, new)


def _region_add(command: str, add: dict, update: dict, ref: int, new: bool) -> list[dict]:
    """Add a box or polygon (kept when its key finds it), bring it up to date, link the annotation.

    New (no earlier version of the annotation seen), the add links the region as it creates it
    (`connect`): one command and one look-up fewer than an `AddConnection` with `if_not_found`, for
    the same result, since a region found by its key was linked by the save that created it.
    """
    link = {"class": ANNOTATION_REGION, "src": 2, "dst": ref, "if_not_found": {}}
    if new:
        return [
            {command: {**add, "connect": {"ref": 2, "class": ANNOTATION_REGION, "direction": "in"}}}
        ]
    return [{command: add}, update, {"AddConnection": link}]


def _keypoint_commands(
    region: Region, ann: AnnotationRecord, ref: int, size: tuple | None, new: bool = False
) -> list[dict]:
    x, y = region.point_pixels(size)
    v = region.value
    props = _region_props(region, ann)
    props.update(
        x=x,
        y=y,
        label=region.labels[0] if region.labels else "",
        LS_x=float(v.get("x", 0)),
        LS_y=float(v.get("y", 0)),
        LS_width=v.get("width"),
    )
    props = _clean(props)
    key = {"LS_id": ["==", region.id], "LS_annotation": ["==", str(ann.id)]}
    return [
        {
            "AddEntity": {
                "_ref": ref,
                "class": KEYPOINT_CLASS,
                "properties": props,
                "if_not_found": key,
                "connect": {"ref": 1, "class": KEYPOINT_IMAGE},
            }
        },
        *_updated(new, {"UpdateEntity": {"ref": ref, "properties": props}}),
        {"AddConnection": {"class": ANNOTATION_REGION, "src": 2, "dst": ref, "if_not_found": {}}},
    ]


def _updated(new: bool, update: dict) -> list[dict]:
    """The update that brings a region found by its key up to date; not needed for a new annotation."""
    return [] if new else [update]


def save_annotation_query(
    ann: AnnotationRecord,
    content: AnnotationContent,
    image_uniqueid: str | None,
    image_size: tuple[float, float] | None = None,
    removable_properties: list[str] | tuple[str, ...] = (),
    new: bool = False,
) -> list[dict]:
    """One transaction that makes the database match the annotation: upsert it, its regions and values.

    `new` says the caller found no version of this annotation in the database: the steps that update
    or remove what an earlier version left are skipped and boxes and polygons are linked as they are
    added, so 14 commands become 3 for a box and a choice, and a full pull writes about twice as
    fast (bench/connector.py). The adds keep their keys, so a version written meanwhile by another
    path (a webhook) is neither duplicated nor overwritten.

    Regions keep their Label Studio id: boxes and keypoints are updated in place, and so are polygons
    whose points did not change (a reshaped one is replaced: see `polygon_key`); regions no longer in
    the result are deleted.
    `removable_properties` are the scalar properties the labeling config can produce; those absent
    from this result are removed from the annotation entity.
    """
    ann_key = {"LS_id": ["==", str(ann.id)], **annotation_scope(ann.project_id, ann.instance)}
    identity = _clean(
        {"LS_id": str(ann.id), "LS_project_id": ann.project_id, "LS_instance": ann.instance or None}
    )
    props = _clean(
        {
            **identity,
            "LS_project_title": ann.project_title,
            "LS_task_id": ann.task_id,
            "LS_completed_by": ann.completed_by,
            "LS_updated_by": ann.updated_by,
            "LS_created_at": _date(ann.created_at),
            "LS_updated_at": _date(ann.updated_at),
            "LS_was_cancelled": ann.was_cancelled,
            "LS_ground_truth": ann.ground_truth,
            "LS_lead_time": ann.lead_time,
            "LS_result_count": len(ann.result or []),
            "LS_data": json.dumps(ann.document or {"id": ann.id, "result": ann.result}),
            **content.properties,
        }
    )
    # The image only binds a reference: a count as well cost lensdb a query more per annotation.
    find_image = {
        "_ref": 1,
        "blobs": False,
        "constraints": {UNIQUEID: ["==", image_uniqueid or "0.0.0"]},
    }
    update: dict[str, Any] = {"ref": 2, "properties": props}
    stale = [p for p in removable_properties if p not in content.properties]
    if stale:
        update["remove_props"] = stale
    regions = content.regions if image_uniqueid else []
    keep_boxes = [r.id for r in regions if r.kind == "box"]
    keep_points = [r.id for r in regions if r.kind == "keypoint"]
    keep_shapes = [polygon_key(r) for r in regions if r.kind == "polygon"]
    via_ann = {"ref": 2, "connection_class": ANNOTATION_REGION, "direction": "out"}
    if new:
        q: list[dict] = [
            {"FindImage": find_image},
            {
                "AddEntity": {
                    "_ref": 2,
                    "class": ANNOTATION_CLASS,
                    "properties": props,
                    "if_not_found": ann_key,
                    "connect": {"ref": 1, "class": ANNOTATION_IMAGE},
                }
            },
        ]
        return q + _region_commands(regions, ann, image_size, new=True)
    q = [
        {"FindImage": find_image},
        {
            "AddEntity": {
                "_ref": 2,
                "class": ANNOTATION_CLASS,
                "properties": identity,
                "if_not_found": ann_key,
                "connect": {"ref": 1, "class": ANNOTATION_IMAGE},
            }
        },
        {"UpdateEntity": update},
        {
            "FindBoundingBox": {
                "_ref": 3,
                "blobs": False,
                "is_connected_to": via_ann,
                "constraints": {"LS_id": ["not in", keep_boxes]},
            }
        },
        {"DeleteBoundingBox": {"ref": 3}},
        {
            "FindPolygon": {
                "_ref": 4,
                "blobs": False,
                "is_connected_to": via_ann,
                "constraints": {"LS_shape": ["not in", keep_shapes]},
            }
        },
        {"DeletePolygon": {"ref": 4}},
        {
            "FindEntity": {
                "_ref": 5,
                "with_class": KEYPOINT_CLASS,
                "is_connected_to": via_ann,
                "constraints": {"LS_id": ["not in", keep_points]},
            }
        },
        {"DeleteEntity": {"ref": 5}},
        # Polygons saved before LS_shape existed match no comparison on it: replace them once.
        {
            "FindPolygon": {
                "_ref": 6,
                "blobs": False,
                "is_connected_to": via_ann,
                "constraints": {"LS_shape": ["==", None]},
            }
        },
        {"DeletePolygon": {"ref": 6}},
    ]
    return q + _region_commands(regions, ann, image_size, new=False)


def _region_commands(
    regions: list[Region], ann: AnnotationRecord, size: tuple | None, new: bool
) -> list[dict]:
    builders = {"box": _box_commands, "polygon": _polygon_commands, "keypoint": _keypoint_commands}
    q: list[dict] = []
    ref = 7  # after the save's own references (1-6)
    for region in regions:
        if region.kind == "polygon" and len(region.value.get("points") or []) < 3:
            continue  # not a polygon yet; still kept in LS_data
        q.extend(builders[region.kind](region, ann, ref, size, new))
        ref += 1
    return q


def delete_annotation_query(annotation_id: int, project_id: int, instance: str = "") -> list[dict]:
    """Delete an annotation entity and every region it owns, in one transaction."""
    via_ann = {"ref": 1, "connection_class": ANNOTATION_REGION, "direction": "out"}
    return [
        {
            "FindEntity": {
                "_ref": 1,
                "with_class": ANNOTATION_CLASS,
                "constraints": {
                    "LS_id": ["==", str(annotation_id)],
                    **annotation_scope(project_id, instance),
                },
            }
        },
        {"FindBoundingBox": {"_ref": 2, "blobs": False, "is_connected_to": via_ann}},
        {"DeleteBoundingBox": {"ref": 2}},
        {"FindPolygon": {"_ref": 3, "blobs": False, "is_connected_to": via_ann}},
        {"DeletePolygon": {"ref": 3}},
        {"FindEntity": {"_ref": 4, "with_class": KEYPOINT_CLASS, "is_connected_to": via_ann}},
        {"DeleteEntity": {"ref": 4}},
        {"DeleteEntity": {"ref": 1}},
    ]
