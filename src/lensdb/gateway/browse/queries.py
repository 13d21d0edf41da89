"""Query builders for the browse page and their parsers. Pure: they return JSON commands, never send them.

The data model is the Label Studio layer's (see `lensdb.labelstudio.queries`): boxes and polygons are
regions of their image with a `label`; keypoints are `LS_keypoint` entities linked to the image by
`LS_keypoint_image`; regions written for a human annotation carry `LS_annotation` (the annotation's
id) and hang off an `LS_annotation` entity (linked by `LS_annotation_image`); regions without it are
model predictions. An image's `dataset` property is the one `lensdb import --dataset` writes.

Every builder returns a `Query`: the commands plus a name for each, so parsers read answers by
those names, never by position.

Paging is by keyset: a page asks for images whose `_uniqueid` is greater than the last one shown
(row id order, the engine's natural order), so page 20,000 costs what page 1 costs
(bench/browse.py measures both).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from lensdb.labelstudio.queries import (
    ANNOTATION_CLASS,
    ANNOTATION_IMAGE,
    KEYPOINT_CLASS,
    KEYPOINT_IMAGE,
    UNIQUEID,
)

DATASET = "dataset"
HUMAN = "LS_annotation"  # on a region: the id of the human annotation it belongs to
REGION_LINKS = {"box": "_BoundingBoxToImage", "polygon": "_PolygonToImage"}
# Annotation properties shown on an image's page (LS_data, the whole document, stays out).
ANNOTATION_FIELDS = (
    "LS_id",
    "LS_project_id",
    "LS_project_title",
    "LS_task_id",
    "LS_completed_by",
    "LS_updated_by",
    "LS_created_at",
    "LS_updated_at",
    "LS_was_cancelled",
    "LS_ground_truth",
    "LS_lead_time",
    "LS_result_count",
)
ANNOTATED = ("", "yes", "no")
_PAGE_REF = 10


class BadFilter(ValueError):
    """A filter typed into the page that cannot become a query; the message says how to fix it."""


@dataclass(frozen=True)
class Query:
    """Commands and, for each, the name its answer is read by."""

    commands: list[dict]
    names: tuple[str, ...]

    def answers(self, response: list[dict]) -> dict[str, dict]:
        """Each named command's answer body (the engine answers one item per command, in order)."""
        out: dict[str, dict] = {}
        for name, command, item in zip(self.names, self.commands, response, strict=False):
            (cmd,) = command
            out[name] = item.get(cmd, {}) if isinstance(item, dict) else {}
        return out


@dataclass(frozen=True)
class GridFilter:
    """What the page's filter form asks for; `constraints` is ApertureDB JSON (object or expression)."""

    constraints: dict | list | None = None
    dataset: str = ""
    label: str = ""
    annotated: str = ""  # "", "yes" (has a human annotation) or "no"

    def shows(self, image: GridImage) -> bool:
        """Whether the image passes the label and annotated filters (read from its overlays)."""
        if self.label and not any(s.label == self.label for s in image.shapes):
            return False
        if self.annotated:
            return image.annotated == (self.annotated == "yes")
        return True


def parse_constraints(text: str) -> dict | list | None:
    """The constraints field of the page: empty, a JSON object or an expression array."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise BadFilter(
            f'constraints are not valid JSON ({exc}); e.g. {{"width": [">=", 640]}}'
        ) from None
    if not isinstance(value, dict | list):
        raise BadFilter('constraints must be a JSON object, e.g. {"width": [">=", 640]}')
    return value or None


def _and(user: dict | list | None, extra: dict[str, list]) -> dict | list | None:
    """The user's constraints AND the page's own (dataset, keyset cursor), whatever the user used."""
    if user is None:
        return extra or None
    if not extra:
        return user
    if isinstance(user, list):
        # The expression form: the page's terms become comparisons of the same form.
        terms = [[f"${k}", op, v] for k, spec in extra.items() for op, v in _pairs(spec)]
        return ["all", user, *terms]
    # The object form nests under "all", so the user's keys never collide with the page's.
    return {**extra, "all": user}


def _pairs(spec: list) -> list[tuple[str, Any]]:
    return [(spec[i], spec[i + 1]) for i in range(0, len(spec), 2)]


def _region_results(extra: list[str]) -> dict[str, Any]:
    return {
        "blobs": False,
        "labels": True,
        "uniqueids": True,
        "group_by_source": True,
        "results": {"list": [HUMAN, "score", "confidence", *extra]},
    }


def _overlay_commands(ref: int, all_properties: bool = False) -> tuple[list[dict], tuple]:
    """Boxes, polygons, keypoints and annotations of the images bound to `ref`, grouped by image."""
    box: dict[str, Any] = {"image_ref": ref, "coordinates": True, **_region_results([])}
    poly: dict[str, Any] = {"image_ref": ref, "vertices": True, **_region_results([])}
    points: dict[str, Any] = {
        "with_class": KEYPOINT_CLASS,
        "is_connected_to": {"ref": ref, "connection_class": KEYPOINT_IMAGE},
        "uniqueids": True,
        "group_by_source": True,
        "results": {"list": ["x", "y", "label", HUMAN, "LS_id"]},
    }
    annotations: dict[str, Any] = {
        "with_class": ANNOTATION_CLASS,
        "is_connected_to": {"ref": ref, "connection_class": ANNOTATION_IMAGE},
        "uniqueids": True,
        "group_by_source": True,
        "results": {"list": list(ANNOTATION_FIELDS)},
    }
    if all_properties:
        for body in (box, poly, points):
            body["results"] = {"all_properties": True}
    commands = [
        {"FindBoundingBox": box},
        {"FindPolygon": poly},
        {"FindEntity": points},
        {"FindEntity": annotations},
    ]
    return commands, ("boxes", "polygons", "keypoints", "annotations")


@dataclass(frozen=True)
class LabelRegions:
    """The uniqueids of the boxes, polygons and keypoints carrying one label (a `label_probe_query`
    answer); `complete` is False when some kind had more than the probe's limit."""

    boxes: tuple[str, ...] = ()
    polygons: tuple[str, ...] = ()
    keypoints: tuple[str, ...] = ()
    complete: bool = True


_LABEL_FINDS = (
    ("boxes", "FindBoundingBox"),
    ("polygons", "FindPolygon"),
    ("keypoints", "FindEntity"),
)


def label_probe_query(label: str, limit: int) -> Query:
    """Up to `limit` regions of each kind carrying `label`: tells a rare label (every region known,
    the engine then reaches their images) from a common one (the page reads images and keeps those
    showing the label, which costs what a plain page costs times the reads it takes)."""
    commands: list[dict] = []
    for _, command in _LABEL_FINDS:
        body: dict[str, Any] = {"uniqueids": True, "results": {"limit": limit + 1}}
        if command == "FindEntity":
            body.update(with_class=KEYPOINT_CLASS, constraints={"label": ["==", label]})
        else:
            body.update(blobs=False, with_label=label)
        commands.append({command: body})
    return Query(commands, tuple(name for name, _ in _LABEL_FINDS))


def parse_label_probe(query: Query, response: list[dict], limit: int) -> LabelRegions:
    answers = query.answers(response)
    found = {
        name: tuple(e[UNIQUEID] for e in answers.get(name, {}).get("entities") or [])
        for name, _ in _LABEL_FINDS
    }
    complete = all(len(v) <= limit for v in found.values())
    return LabelRegions(found["boxes"], found["polygons"], found["keypoints"], complete)


def _label_refs(regions: LabelRegions, first_ref: int) -> tuple[list[dict], list[dict]]:
    """These regions and keypoints, and the is_connected_to parts reaching their images."""
    commands = [
        {
            "FindBoundingBox": {
                "_ref": first_ref,
                "blobs": False,
                "constraints": {UNIQUEID: ["in", list(regions.boxes)]},
            }
        },
        {
            "FindPolygon": {
                "_ref": first_ref + 1,
                "blobs": False,
                "constraints": {UNIQUEID: ["in", list(regions.polygons)]},
            }
        },
        {
            "FindEntity": {
                "_ref": first_ref + 2,
                "with_class": KEYPOINT_CLASS,
                "constraints": {UNIQUEID: ["in", list(regions.keypoints)]},
            }
        },
    ]
    links = [
        {"ref": first_ref, "connection_class": REGION_LINKS["box"]},
        {"ref": first_ref + 1, "connection_class": REGION_LINKS["polygon"]},
        {"ref": first_ref + 2, "connection_class": KEYPOINT_IMAGE},
    ]
    return commands, links


def _annotated_refs(first_ref: int) -> tuple[list[dict], list[dict]]:
    """Human annotations, and the is_connected_to part reaching their images.

    The Label Studio layer writes one `LS_annotation` entity per annotation, linked to its image,
    and hangs the annotation's regions off it, so the entities alone tell annotated images: a
    scan of every region for an `LS_annotation` property would cost 0.8 s over 110,000 boxes.
    """
    commands = [{"FindEntity": {"_ref": first_ref, "with_class": ANNOTATION_CLASS}}]
    return commands, [{"ref": first_ref, "connection_class": ANNOTATION_IMAGE}]


def grid_query(
    f: GridFilter, after: str | None, limit: int, labelled: LabelRegions | None = None
) -> Query:
    """One page of the grid: up to `limit` images after the `after` uniqueid, with their overlays.

    Constraints, dataset and "annotated: yes" are answered by the engine (annotations through
    `is_connected_to`), and so is the label when `labelled` lists its regions (a rare label, see
    `label_probe_query`). Otherwise the label, like "annotated: no" (which has no form in the query
    language), is left to the caller: it keeps the images `f.shows` and asks again after the last
    one it read (`GridPage.last_read`).
    """
    extra: dict[str, list] = {}
    if f.dataset:
        extra[DATASET] = ["==", f.dataset]
    if after:
        extra[UNIQUEID] = [">", after]
    find: dict[str, Any] = {
        "_ref": _PAGE_REF,
        "blobs": False,
        "uniqueids": True,
        "results": {"list": ["width", "height", DATASET], "limit": limit},
    }
    where = _and(f.constraints, extra)
    if where is not None:
        find["constraints"] = where
    commands: list[dict] = []
    names: list[str] = []
    parts: list[dict] = []
    if f.label and labelled is not None:
        found, links = _label_refs(labelled, 1)
        commands += found
        names += ["label_boxes", "label_polygons", "label_keypoints"]
        parts.append({"any": links})
    if f.annotated == "yes":
        found, links = _annotated_refs(4)
        commands += found
        names += ["human_annotations"]
        parts.append(links[0])
    if parts:
        find["is_connected_to"] = parts[0] if len(parts) == 1 else {"all": parts}
    commands.append({"FindImage": find})
    names.append("images")
    overlay, overlay_names = _overlay_commands(_PAGE_REF)
    return Query(commands + overlay, (*names, *overlay_names))


# ---- answers -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    """One overlay: a box (`box` = x, y, width, height), a polygon (`points`) or a keypoint
    (`points` holds the one point), in pixels of the stored image."""

    kind: str  # "box" | "polygon" | "keypoint"
    label: str
    human: bool  # from a human annotation (LS_annotation), else a prediction
    uniqueid: str
    box: tuple[float, float, float, float] | None = None
    points: tuple[tuple[float, float], ...] = ()
    annotation: str = ""
    score: float | None = None
    properties: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Annotation:
    """A human annotation of an image, as Label Studio saved it: who and when."""

    uniqueid: str
    properties: dict

    def get(self, key: str) -> Any:
        return self.properties.get(key)


@dataclass(frozen=True)
class GridImage:
    uniqueid: str
    width: int | None
    height: int | None
    dataset: str | None
    shapes: tuple[Shape, ...]
    annotations: tuple[Annotation, ...]

    @property
    def annotated(self) -> bool:
        """Has a human annotation: an `LS_annotation` entity linked to it (see `_annotated_refs`)."""
        return bool(self.annotations)


@dataclass(frozen=True)
class GridPage:
    images: tuple[GridImage, ...]
    last_read: str | None  # uniqueid of the last image the engine returned (the keyset cursor)
    more: bool  # the engine returned a full page, so more may follow


def _grouped(body: dict) -> dict[str, list[dict]]:
    entities = body.get("entities") or {}
    return entities if isinstance(entities, dict) else {}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _props(e: dict) -> dict:
    return {k: v for k, v in e.items() if not k.startswith("_")}


def _shapes(answers: dict[str, dict], uid: str) -> list[Shape]:
    out: list[Shape] = []
    for e in _grouped(answers.get("boxes", {})).get(uid, []):
        c = e.get("_coordinates") or {}
        box = tuple(_number(c.get(k)) for k in ("x", "y", "width", "height"))
        if any(v is None for v in box):
            continue
        out.append(
            Shape(
                "box",
                str(e.get("_label") or ""),
                e.get(HUMAN) is not None,
                e["_uniqueid"],
                box=box,  # type: ignore[arg-type]
                annotation=str(e.get(HUMAN) or ""),
                score=_number(e.get("score", e.get("confidence"))),
                properties=_props(e),
            )
        )
    for e in _grouped(answers.get("polygons", {})).get(uid, []):
        for ring in e.get("_vertices") or []:
            pts = tuple((float(x), float(y)) for x, y in ring)
            out.append(
                Shape(
                    "polygon",
                    str(e.get("_label") or ""),
                    e.get(HUMAN) is not None,
                    e["_uniqueid"],
                    points=pts,
                    annotation=str(e.get(HUMAN) or ""),
                    score=_number(e.get("score", e.get("confidence"))),
                    properties=_props(e),
                )
            )
    for e in _grouped(answers.get("keypoints", {})).get(uid, []):
        x, y = _number(e.get("x")), _number(e.get("y"))
        if x is None or y is None:
            continue
        out.append(
            Shape(
                "keypoint",
                str(e.get("label") or ""),
                e.get(HUMAN) is not None,
                e["_uniqueid"],
                points=((x, y),),
                annotation=str(e.get(HUMAN) or ""),
                properties=_props(e),
            )
        )
    return out


def _annotations(answers: dict[str, dict], uid: str) -> tuple[Annotation, ...]:
    found = _grouped(answers.get("annotations", {})).get(uid, [])
    return tuple(Annotation(e["_uniqueid"], _props(e)) for e in found)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_grid(query: Query, response: list[dict], limit: int) -> GridPage:
    """The images of a `grid_query` answer, in order, each with its overlays."""
    answers = query.answers(response)
    found = answers.get("images", {}).get("entities") or []
    images = tuple(
        GridImage(
            e[UNIQUEID],
            _int(e.get("width")),
            _int(e.get("height")),
            e.get(DATASET) if isinstance(e.get(DATASET), str) else None,
            tuple(_shapes(answers, e[UNIQUEID])),
            _annotations(answers, e[UNIQUEID]),
        )
        for e in found
    )
    last = images[-1].uniqueid if images else None
    return GridPage(images, last, len(images) >= limit)


# ---- an image's own page ----------------------------------------------------------------------


def image_query(uniqueid: str) -> Query:
    """One image with all its properties, its regions (all properties) and its annotations."""
    find = {
        "_ref": _PAGE_REF,
        "blobs": False,
        "uniqueids": True,
        "constraints": {UNIQUEID: ["==", uniqueid]},
        "results": {"all_properties": True, "limit": 1},
    }
    overlay, names = _overlay_commands(_PAGE_REF, all_properties=True)
    return Query([{"FindImage": find}, *overlay], ("images", *names))


@dataclass(frozen=True)
class ImagePage:
    image: GridImage
    properties: dict


def parse_image(query: Query, response: list[dict]) -> ImagePage | None:
    """The image of an `image_query` answer, or None when no image has that uniqueid."""
    answers = query.answers(response)
    found = answers.get("images", {}).get("entities") or []
    if not found:
        return None
    e = found[0]
    uid = e[UNIQUEID]
    image = GridImage(
        uid,
        _int(e.get("width")),
        _int(e.get("height")),
        e.get(DATASET) if isinstance(e.get(DATASET), str) else None,
        tuple(_shapes(answers, uid)),
        _annotations(answers, uid),
    )
    return ImagePage(image, _props(e))


def thumbnail_query(uniqueid: str, width: int | None) -> list[dict]:
    """The image's bytes, resized by the engine to `width` pixels (aspect kept) when given."""
    find: dict[str, Any] = {
        "blobs": True,
        "constraints": {UNIQUEID: ["==", uniqueid]},
        "results": {"limit": 1},
    }
    if width:
        find["operations"] = [{"type": "resize", "width": width}]
    return [{"FindImage": find}]


def command_names(commands: list[dict]) -> list[str]:
    """The command names of a query, for the permission check."""
    return [name for command in commands for name in command]


def label_studio_task_url(ls_url: str | None, annotation: Annotation) -> str | None:
    """The Label Studio page of the task an annotation belongs to, when its address is known."""
    project, task = annotation.get("LS_project_id"), annotation.get("LS_task_id")
    if not ls_url or project is None or task is None:
        return None
    return f"{ls_url.rstrip('/')}/projects/{project}/data?task={task}"
