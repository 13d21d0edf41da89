"""Read images and their regions back from lensdb (through the query language) and write a format.

Human annotations are regions with an `LS_annotation` property (written by Label Studio, by the
connector, or imported as annotations); predictions are regions without one.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from lensdb.client import Client
from lensdb.errors import command_answer
from lensdb.formats import coco, lsjson, voc, yolo
from lensdb.formats.importer import CATEGORY_CLASS
from lensdb.formats.model import (
    ANNOTATIONS,
    PREDICTIONS,
    Box,
    Category,
    ImageRecord,
    Keypoint,
    Labeling,
    Polygon,
)
from lensdb.labelstudio import queries as Q
from lensdb.media import content_type

PAGE = 500
SYSTEM = {"width", "height", "guid", "imported_at", "import_source"}
EXTENSIONS = {"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp", "image/gif": ".gif",
              "image/bmp": ".bmp", "image/tiff": ".tif"}  # fmt: skip


@dataclass(frozen=True)
class ExportOptions:
    constraints: dict | None = None
    kinds: frozenset[str] = frozenset({ANNOTATIONS, PREDICTIONS})
    media: str = "copy"  # copy | link | none
    link_base: str = ""  # links: LINK_BASE/media/images/<uniqueid>
    split_by: str | None = None
    since: str | None = None  # ISO date


@dataclass
class ExportSummary:
    images: int = 0
    boxes: int = 0
    polygons: int = 0
    keypoints: int = 0
    files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [
            f"images: {self.images}, boxes: {self.boxes}, polygons: {self.polygons}, "
            f"keypoints: {self.keypoints}",
            *(f"wrote {f}" for f in self.files),
            *self.notes,
        ]


def _date(iso: str) -> dict:
    return {"_date": iso}


def selected_uniqueids(client: Client, opts: ExportOptions) -> list[str]:
    """The images to export, in id order; with `since`, only those imported or annotated since."""
    where = dict(opts.constraints or {})
    if not opts.since:
        response, _ = client.query(
            [{"FindImage": {"blobs": False, "uniqueids": True, "constraints": where}}]
            if where
            else [{"FindImage": {"blobs": False, "uniqueids": True}}]
        )
        return [e[Q.UNIQUEID] for e in Q.entities(response, "FindImage")]
    imported = {**where, "imported_at": [">=", _date(opts.since)]}
    r1, _ = client.query(
        [{"FindImage": {"blobs": False, "uniqueids": True, "constraints": imported}}]
    )
    find_changed: dict[str, Any] = {
        "blobs": False,
        "uniqueids": True,
        "is_connected_to": {"ref": 1, "connection_class": Q.ANNOTATION_IMAGE},
    }
    if where:
        find_changed["constraints"] = where
    r2, _ = client.query(
        [
            {
                "FindEntity": {
                    "_ref": 1,
                    "with_class": Q.ANNOTATION_CLASS,
                    "constraints": {"LS_updated_at": [">=", _date(opts.since)]},
                }
            },
            {"FindImage": find_changed},
        ]
    )
    uids = {e[Q.UNIQUEID] for e in Q.entities(r1, "FindImage")}
    uids |= {e[Q.UNIQUEID] for e in Q.entities(r2, "FindImage")}
    return sorted(uids, key=lambda u: tuple(int(p) for p in u.split(".")))


def _page_query(uids: list[str], opts: ExportOptions) -> list[dict]:
    region_where: dict[str, Any] = {}
    if opts.kinds == {ANNOTATIONS}:
        region_where = {"LS_annotation": ["!=", None]}
    elif opts.kinds == {PREDICTIONS}:
        region_where = {"LS_annotation": ["==", None]}
    common: dict[str, Any] = {
        "image_ref": 1,
        "blobs": False,
        "labels": True,
        "uniqueids": True,
        "group_by_source": True,
        "results": {"all_properties": True},
    }
    if region_where:
        common["constraints"] = region_where
    kp: dict[str, Any] = {
        "with_class": Q.KEYPOINT_CLASS,
        "is_connected_to": {"ref": 1, "connection_class": Q.KEYPOINT_IMAGE},
        "group_by_source": True,
        "results": {"all_properties": True},
    }
    if region_where:
        kp["constraints"] = region_where
    return [
        {
            "FindImage": {
                "_ref": 1,
                "blobs": False,
                "constraints": {Q.UNIQUEID: ["in", uids]},
                "results": {"all_properties": True},
            }
        },
        {"FindBoundingBox": {**common, "coordinates": True}},
        {"FindPolygon": {**common, "vertices": True}},
        {"FindEntity": kp},
    ]


def _grouped(response: list[dict], name: str) -> dict[str, list[dict]]:
    ents = (command_answer(response, name) or {}).get("entities") or {}
    return ents if isinstance(ents, dict) else {}


REGION_SYSTEM = {"score", "instance", "dataset", "source", "model_version", "label", "x", "y",
                 "visibility", "kp_index", "category"}  # fmt: skip


def _region_extra(e: dict) -> dict[str, Any]:
    return {
        k: v
        for k, v in e.items()
        if not k.startswith(("_", "LS_")) and k not in REGION_SYSTEM and not isinstance(v, dict)
    }


def _labelings(boxes: list[dict], polys: list[dict], kps: list[dict]) -> tuple[Labeling, ...]:
    groups: dict[tuple[str, str], dict[str, list]] = defaultdict(
        lambda: {"boxes": [], "polygons": [], "keypoints": []}
    )
    for b in boxes:
        c = b["_coordinates"]
        key = _owner(b)
        groups[key]["boxes"].append(
            Box(
                b.get("_label") or "",
                c["x"],
                c["y"],
                c["width"],
                c["height"],
                b.get("score"),
                b.get("instance"),
                _region_extra(b),
            )
        )
    for p in polys:
        rings = tuple(tuple((x, y) for x, y in ring) for ring in p.get("_vertices") or [])
        groups[_owner(p)]["polygons"].append(
            Polygon(
                p.get("_label") or "", rings, p.get("score"), p.get("instance"), _region_extra(p)
            )
        )
    for k in kps:
        if not isinstance(k.get("x"), int | float) or not isinstance(k.get("y"), int | float):
            continue
        groups[_owner(k)]["keypoints"].append(
            Keypoint(
                str(k.get("label") or ""),
                k["x"],
                k["y"],
                int(k.get("visibility") or 2),
                k.get("kp_index"),
                k.get("category"),
                k.get("instance"),
                k.get("score"),
            )
        )
    out = []
    for (kind, name), g in groups.items():
        out.append(
            Labeling(
                kind,
                tuple(g["boxes"]),
                tuple(g["polygons"]),
                tuple(g["keypoints"]),
                name=name,
            )
        )
    return tuple(out)


def _owner(e: dict) -> tuple[str, str]:
    ann = e.get("LS_annotation")
    if ann is not None:
        return ANNOTATIONS, str(ann)
    return PREDICTIONS, str(e.get("model_version") or "")


def read_records(client: Client, uids: list[str], opts: ExportOptions) -> Iterator[ImageRecord]:
    for i in range(0, len(uids), PAGE):
        chunk = uids[i : i + PAGE]
        response, _ = client.query(_page_query(chunk, opts))
        boxes = _grouped(response, "FindBoundingBox")
        polys = _grouped(response, "FindPolygon")
        kps = _grouped(response, "FindEntity")
        for img in Q.entities(response, "FindImage"):
            uid = img[Q.UNIQUEID]
            props = {
                k: v
                for k, v in img.items()
                if not k.startswith("_") and k not in SYSTEM and not isinstance(v, dict)
            }
            yield ImageRecord(
                file_name=str(img.get("file_name") or uid),
                path=None,
                width=img.get("width"),
                height=img.get("height"),
                properties=props,
                labelings=_labelings(boxes.get(uid, []), polys.get(uid, []), kps.get(uid, [])),
                uniqueid=uid,
            )


def categories(client: Client, records: list[ImageRecord]) -> list[Category]:
    """The imported datasets' categories (their ids and order), then any other label seen."""
    datasets = sorted({str(r.properties["dataset"]) for r in records if "dataset" in r.properties})
    found: list[Category] = []
    if datasets:
        response, _ = client.query(
            [
                {
                    "FindEntity": {
                        "with_class": CATEGORY_CLASS,
                        "constraints": {"dataset": ["in", datasets]},
                        "results": {"all_properties": True},
                    }
                }
            ]
        )
        for e in sorted(Q.entities(response, "FindEntity"), key=lambda e: e.get("category_id", 0)):
            if any(c.name == e["name"] for c in found):
                continue
            found.append(
                Category(
                    e["name"],
                    int(e.get("category_id", 0)),
                    str(e.get("supercategory") or ""),
                    tuple(json.loads(e.get("keypoints") or "[]")),
                    tuple(tuple(p) for p in json.loads(e.get("skeleton") or "[]")),
                )
            )
    ids = {c.id for c in found}
    if len(ids) != len(found):  # two datasets with clashing ids: renumber in order
        found = [replace(c, id=i + 1) for i, c in enumerate(found)]
    names = {c.name for c in found}
    used = sorted(
        {
            r.label if not isinstance(r, Keypoint) else (r.category or r.label)
            for rec in records
            for lab in rec.labelings
            for r in (*lab.boxes, *lab.polygons, *lab.keypoints)
        }
        - names
    )
    next_id = max((c.id for c in found), default=0) + 1
    return found + [Category(n, next_id + i) for i, n in enumerate(used)]


def _blobs(client: Client, uids: list[str]) -> Iterator[tuple[str, bytes]]:
    for i in range(0, len(uids), 100):
        chunk = uids[i : i + 100]
        response, blobs = client.query(
            [
                {
                    "FindImage": {
                        "blobs": True,
                        "uniqueids": True,
                        "constraints": {Q.UNIQUEID: ["in", chunk]},
                    }
                }
            ]
        )
        for e in Q.entities(response, "FindImage"):
            yield e[Q.UNIQUEID], blobs[e["_blob_index"]]


def _names(records: list[ImageRecord], keep_folders: bool) -> dict[str, str]:
    """A unique file name per image: its own (base) name, prefixed by its id on a clash."""
    out: dict[str, str] = {}
    taken: set[str] = set()
    for r in records:
        name = r.file_name if keep_folders else Path(r.file_name).name
        if name in taken or not Path(name).suffix:
            name = f"{r.uniqueid}-{Path(name).name}"
        taken.add(name)
        out[str(r.uniqueid)] = name
    return out


class Writer:
    """Places image files (or links) and records what was written."""

    def __init__(self, client: Client, opts: ExportOptions, summary: ExportSummary) -> None:
        self.client, self.opts, self.summary = client, opts, summary

    def link(self, uid: str) -> str:
        return f"{self.opts.link_base.rstrip('/')}/media/images/{uid}"

    def place(self, records: list[ImageRecord], folder_of: Callable[[ImageRecord], Path],
              names: dict[str, str]) -> dict[str, str]:  # fmt: skip
        """Write the images' bytes (media=copy); returns uid -> file name actually used."""
        if self.opts.media != "copy":
            return names
        by_uid = {str(r.uniqueid): r for r in records}
        for uid, raw in _blobs(self.client, list(by_uid)):
            name = names[uid]
            if not Path(name).suffix:
                name += EXTENSIONS.get(content_type(raw), ".bin")
                names[uid] = name
            target = folder_of(by_uid[uid]) / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(raw)
        return names


def _split_of(rec: ImageRecord, split_by: str | None) -> str:
    if not split_by:
        return ""
    return str(rec.properties.get(split_by, "unassigned"))


def export(fmt: str, client: Client, out: Path, opts: ExportOptions) -> ExportSummary:
    summary = ExportSummary()
    uids = selected_uniqueids(client, opts)
    records = list(read_records(client, uids, opts))
    cats = categories(client, records)
    for r in records:
        for lab in r.labelings:
            summary.boxes += len(lab.boxes)
            summary.polygons += len(lab.polygons)
            summary.keypoints += len(lab.keypoints)
    summary.images = len(records)
    if opts.media == "link":
        records = [
            replace(r, url=Writer(client, opts, summary).link(str(r.uniqueid))) for r in records
        ]
    splits: dict[str, list[ImageRecord]] = defaultdict(list)
    for r in records:
        splits[_split_of(r, opts.split_by)].append(r)
    {"coco": _coco, "yolo": _yolo, "voc": _voc, "labelstudio": _labelstudio}[fmt](
        client, out, opts, dict(sorted(splits.items())), cats, summary
    )
    return summary


def _write(path: Path, text: str | bytes, summary: ExportSummary) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    summary.files.append(str(path))


def _coco(client, out: Path, opts, splits, cats, summary) -> None:  # noqa: ANN001
    as_file = out.suffix == ".json"
    if as_file and len(splits) > 1:
        raise ValueError("with --split-by, OUT must be a folder (one JSON per split)")
    base = out.parent if as_file else out
    writer = Writer(client, opts, summary)
    predictions_only = opts.kinds == {PREDICTIONS}
    for split, records in splits.items():
        names = _names(records, keep_folders=True)
        img_dir = base / "images" / split if split else base / "images"
        names = writer.place(records, lambda r, d=img_dir: d, names)
        pairs = [(r, names[str(r.uniqueid)]) for r in records]
        doc = coco.build(pairs, cats, set(opts.kinds))
        target = out if as_file else base / f"{split or 'annotations'}.json"
        body: Any = coco.results(doc) if predictions_only else doc
        _write(target, json.dumps(body), summary)


def _yolo(client, out: Path, opts, splits, cats, summary) -> None:  # noqa: ANN001
    if opts.media == "link":
        raise ValueError("a YOLO dataset needs its image files: use --media copy")
    writer = Writer(client, opts, summary)
    order = sorted(cats, key=lambda c: c.id)
    class_of = {c.name: i for i, c in enumerate(order)}
    kinds = set(opts.kinds)
    # A pose dataset when keypoints are exported: as many as the categories name (or the highest
    # index seen), the same for every class, as Ultralytics' kpt_shape wants.
    indices = [
        k.index if k.index is not None else 0
        for rs in splits.values()
        for r in rs
        for lab in r.labelings
        if lab.kind in kinds
        for k in lab.keypoints
    ]
    kpt_count = 0
    if indices:
        kpt_count = max([len(c.keypoints) for c in cats] + [max(indices) + 1])
    left = 0
    for split, records in splits.items():
        names = _names(records, keep_folders=False)
        img_dir = out / "images" / split if split else out / "images"
        lbl_dir = out / "labels" / split if split else out / "labels"
        if opts.media == "copy":
            names = writer.place(records, lambda r, d=img_dir: d, names)
        lbl_dir.mkdir(parents=True, exist_ok=True)
        for r in records:
            name = names[str(r.uniqueid)]
            text, missed = yolo.lines(r, class_of, kinds, kpt_count)
            left += missed
            (lbl_dir / Path(name).with_suffix(".txt").name).write_text("\n".join(text) + "\n")
    doc = yolo.data_yaml(list(splits), [c.name for c in order], kpt_count)
    _write(out / "data.yaml", yaml.safe_dump(doc, sort_keys=False), summary)
    if left:
        summary.notes.append(f"{left} keypoint(s) not written: YOLO pose keeps them with a box")


def _voc(client, out: Path, opts, splits, cats, summary) -> None:  # noqa: ANN001
    if opts.media == "link":
        raise ValueError("a VOC dataset needs its image files: use --media copy")
    writer = Writer(client, opts, summary)
    left_out = 0
    for split, records in splits.items():
        names = _names(records, keep_folders=False)
        if opts.media == "copy":
            names = writer.place(records, lambda r: out / "JPEGImages", names)
        for r in records:
            name = names[str(r.uniqueid)]
            (out / "Annotations").mkdir(parents=True, exist_ok=True)
            (out / "Annotations" / Path(name).with_suffix(".xml").name).write_bytes(
                voc.xml(r, name, set(opts.kinds))
            )
            left_out += sum(len(lab.polygons) + len(lab.keypoints) for lab in r.labelings)
        if split:
            stems = "\n".join(Path(names[str(r.uniqueid)]).stem for r in records)
            _write(out / "ImageSets" / "Main" / f"{split}.txt", stems + "\n", summary)
    summary.files.append(str(out / "Annotations"))
    if left_out:
        summary.notes.append(f"{left_out} polygon(s)/keypoint(s) not written: VOC holds boxes only")


def _labelstudio(client, out: Path, opts, splits, cats, summary) -> None:  # noqa: ANN001
    as_file = out.suffix == ".json"
    if as_file and len(splits) > 1:
        raise ValueError("with --split-by, OUT must be a folder (one JSON per split)")
    base = out.parent if as_file else out
    writer = Writer(client, opts, summary)
    for split, records in splits.items():
        names = _names(records, keep_folders=False)
        img_dir = base / "images" / split if split else base / "images"
        names = writer.place(records, lambda r, d=img_dir: d, names)
        tasks = []
        for r in records:
            ref = r.url or (img_dir / names[str(r.uniqueid)]).relative_to(base).as_posix()
            tasks.append(lsjson.task(r, ref, set(opts.kinds)))
        target = out if as_file else base / f"{split or 'tasks'}.json"
        _write(target, json.dumps(tasks, indent=1), summary)
    kp_names = sorted({k.label for rs in splits.values() for r in rs for lab in r.labelings
                       for k in lab.keypoints})  # fmt: skip
    _write(
        base / "label_config.xml", lsjson.label_config([c.name for c in cats], kp_names), summary
    )
