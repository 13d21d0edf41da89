"""Label Studio tasks from lensdb images: the one builder the plugin's sync, the gateway and push share.

Plain data and a query function in (the engine in-process, or a client), task drafts out; no Django,
no HTTP. A draft carries the task data (an image URL from the caller), lensdb's image id and size in
`meta.lensdb`, the model's boxes and polygons as one prediction, and the annotations lensdb holds for
the image in a given scope (the plugin restores those into a new project).
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lensdb import media
from lensdb.errors import Status, error_info, response_status
from lensdb.index.choose import Choice, choose
from lensdb.labelstudio import queries as Q
from lensdb.labelstudio.labelconfig import Control, LabelConfig, parse_label_config
from lensdb.labelstudio.mapping import box_result, polygon_results

logger = logging.getLogger(__name__)

QueryFn = Callable[[list[dict], list[bytes] | None], tuple[Any, list[bytes]]]
PAGE = 1000
MODEL_VERSION = "lensdb"


class TaskListError(ValueError):
    """The request cannot be turned into tasks; the message says what to change."""


@dataclass
class TaskReport:
    """What could not become part of a task, said once for a whole list instead of per task."""

    unknown_labels: Counter = field(default_factory=Counter)
    no_control: Counter = field(default_factory=Counter)
    no_size: int = 0
    bad_annotations: int = 0

    def lines(self) -> list[str]:
        out = []
        if self.unknown_labels:
            labels = ", ".join(f"{k} ({v})" for k, v in self.unknown_labels.most_common())
            out.append(
                f"Regions whose label is not in the labeling config were left out of predictions: "
                f"{labels}. Add these labels to the config to see them."
            )
        for kind, n in self.no_control.items():
            out.append(
                f"{n} {kind}(s) not shown as predictions: the labeling config has no "
                f"{'RectangleLabels' if kind == 'box' else 'PolygonLabels'} control."
            )
        if self.no_size:
            out.append(
                f"{self.no_size} image(s) have no readable size, so their regions could not be turned "
                "into predictions."
            )
        if self.bad_annotations:
            out.append(f"{self.bad_annotations} exported annotation(s) could not be read back.")
        return out

    def strict_problem(self) -> str | None:
        """For callers that refuse rather than leave regions out: what is missing, in words."""
        problems = []
        if self.unknown_labels:
            labels = ", ".join(f"{k} ({v} region(s))" for k, v in self.unknown_labels.most_common())
            problems.append(
                f"the project's labeling config lacks these labels of predicted regions: {labels}"
            )
        for kind, n in self.no_control.items():
            tag = "RectangleLabels" if kind == "box" else "PolygonLabels"
            problems.append(
                f"{n} {kind}(s) cannot be predictions: the labeling config has no {tag} control"
            )
        return "; ".join(problems) if problems else None


@dataclass
class TaskDraft:
    """One image as a Label Studio task, before the caller stores or sends it."""

    uniqueid: str
    data: dict[str, Any]
    meta: dict[str, Any]
    result: list[dict]  # the model's regions, as one prediction's result
    annotations: list[dict] = field(
        default_factory=list
    )  # {"old_id", "result", "doc"} held by lensdb

    def as_import(self, model_version: str = MODEL_VERSION) -> dict:
        """The task as Label Studio's import API takes it."""
        task: dict[str, Any] = {"data": self.data, "meta": self.meta}
        if self.result:
            task["predictions"] = [{"model_version": model_version, "result": self.result}]
        return task


@dataclass
class TaskOptions:
    constraints: dict | None = None
    uniqueids: list[str] | None = (
        None  # instead of constraints: exactly these images, in this order
    )
    select: Choice | None = (
        None  # images chosen by their embeddings (among those constraints select)
    )
    predictions: bool = False
    pred_constraints: dict | None = None
    properties: list[str] = field(default_factory=list)
    label_config: str | None = None
    limit: int | None = None
    offset: int = 0
    strict_labels: bool = (
        False  # refuse (instead of leave out) regions whose label the config lacks
    )
    model_version: str = MODEL_VERSION
    readonly: bool = False


@dataclass
class TaskList:
    tasks: list[dict]
    report: TaskReport = field(default_factory=TaskReport)

    def warnings(self) -> list[str]:
        return self.report.lines()


def default_config() -> LabelConfig:
    """Without a labeling config: `$image`, boxes on control `label`, polygons on control `polygon`."""
    return LabelConfig(
        controls=[
            Control("label", "rectanglelabels", "image"),
            Control("polygon", "polygonlabels", "image"),
        ],
        objects={"image": ("image", "$image")},
    )


def config_of(label_config: str | None) -> LabelConfig:
    if not label_config:
        return default_config()
    cfg = parse_label_config(label_config)
    if not cfg.objects:
        raise TaskListError(
            "the labeling config could not be read (no object tag such as <Image name=... "
            'value="$image"/>)'
        )
    return cfg


def _check(response: Any) -> list:
    """The answer when lensdb accepted the query; TaskListError with its reason otherwise."""
    if not isinstance(response, list) or response_status(response) < Status.OK:
        raise TaskListError(f"lensdb refused the query: {error_info(response)}")
    return response


def _entities(response: Any, command: str) -> list[dict]:
    """The entities one command of an accepted answer returned, found by the command's name."""
    return Q.entities(_check(response), command)


def _plain(value: Any) -> Any:
    return value["_date"] if isinstance(value, dict) and set(value) == {"_date"} else value


def select_images(query: QueryFn, opts: TaskOptions) -> list[str]:
    """The _uniqueids the options select, in a stable order."""
    if opts.uniqueids is not None:
        return list(dict.fromkeys(opts.uniqueids))
    if opts.select is not None:
        try:
            chosen = [c["_uniqueid"] for c in choose(query, opts.select, opts.constraints)]
        except ValueError as e:
            raise TaskListError(f"select: {e}") from None
        end = None if opts.limit is None else opts.offset + opts.limit
        return chosen[opts.offset : end]
    out: list[str] = []
    offset = opts.offset
    while opts.limit is None or len(out) < opts.limit:
        n = PAGE if opts.limit is None else min(PAGE, opts.limit - len(out))
        response, _ = query(Q.list_images_query(opts.constraints, Q.UNIQUEID, n, offset), None)
        entities = _entities(response, "FindImage")
        out += [e["_uniqueid"] for e in entities]
        offset += len(entities)
        if len(entities) < n:
            break
    return out


def _size(img: dict) -> tuple[float, float] | None:
    w, h = img.get("width"), img.get("height")
    ok = all(isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in (w, h))
    return (float(w), float(h)) if ok else None


def read_sizes(query: QueryFn, uids: list[str]) -> dict[str, tuple[int, int]]:
    """Sizes from the image headers of images that lack width/height, then stored on them.

    Only images with regions need a size (regions are in pixels, predictions in percent), so this
    reads few blobs; storing the size means a later sync reads none. Storing is best effort: a
    read-only user still gets the predictions.
    """
    response, blobs = query(Q.image_sizes_query(uids), None)
    entities = _entities(response, "FindImage")
    sizes = {}
    for e, blob in zip(entities, blobs, strict=False):
        try:
            info = media.probe(blob)
        except media.MediaError:
            continue
        sizes[e[Q.UNIQUEID]] = (info.width, info.height)
    if sizes:
        try:
            _check(query(Q.store_sizes_query(sizes), None)[0])
        except Exception as exc:  # noqa: BLE001 - any refusal (permissions, a client's own error type)
            logger.info(
                "could not store the sizes read from %d image header(s): %s", len(sizes), exc
            )
    return sizes


def _predictions(
    boxes: list[dict],
    polys: list[dict],
    size: tuple[float, float],
    box_ctrl: Control | None,
    poly_ctrl: Control | None,
    readonly: bool,
    report: TaskReport,
) -> list[dict]:
    w, h = size
    result: list[dict] = []
    for kind, regions, ctrl in (("box", boxes, box_ctrl), ("polygon", polys, poly_ctrl)):
        if not regions:
            continue
        if ctrl is None:
            report.no_control[kind] += len(regions)
            continue
        for r in regions:
            label = r.get("_label")
            if ctrl.labels and label and label not in ctrl.labels:
                report.unknown_labels[label] += 1
                continue
            if kind == "box":
                result.append(box_result(r, w, h, ctrl, readonly))
            else:
                result.extend(polygon_results(r, w, h, ctrl, readonly))
    return result


def _restored(annotations: list[dict], report: TaskReport) -> list[dict]:
    out = []
    for a in annotations:
        try:
            doc = json.loads(a.get("LS_data") or "{}")
            out.append({"old_id": a.get("LS_id"), "result": doc["result"], "doc": doc})
        except (ValueError, KeyError, TypeError):
            report.bad_annotations += 1
    return out


def build_page(
    query: QueryFn,
    uids: list[str],
    cfg: LabelConfig,
    image_url: Callable[[str], str],
    *,
    properties: list[str] = (),
    predictions: bool = False,
    pred_constraints: dict | None = None,
    readonly: bool = False,
    annotations_scope: dict | None = None,
    report: TaskReport | None = None,
) -> list[TaskDraft]:
    """Drafts for these images (at most PAGE), in their order; images gone meanwhile are skipped."""
    report = report if report is not None else TaskReport()
    props = list(properties)
    response, _ = query(
        Q.image_details_query(uids, props, predictions, pred_constraints, annotations_scope), None
    )
    details = Q.parse_image_details(_check(response))
    data_key = cfg.image_data_key()
    box_ctrl, poly_ctrl = cfg.box_control(), cfg.polygon_control()
    sizeless = [
        u
        for u in uids
        if u in details.images
        and not _size(details.images[u])
        and (details.boxes.get(u) or details.polygons.get(u))
    ]
    probed = read_sizes(query, sizeless) if sizeless else {}
    drafts = []
    for uid in uids:
        img = details.images.get(uid)
        if img is None:
            continue  # deleted meanwhile, or a uniqueid that is no image
        size = _size(img) or probed.get(uid)
        data: dict[str, Any] = {data_key: image_url(uid)}
        for name in props:
            if img.get(name) is not None:
                data[name] = _plain(img[name])
        boxes, polys = details.boxes.get(uid) or [], details.polygons.get(uid) or []
        result: list[dict] = []
        if size is not None:
            result = _predictions(boxes, polys, size, box_ctrl, poly_ctrl, readonly, report)
        elif boxes or polys:
            report.no_size += 1
        meta = {
            "lensdb": {
                "uniqueid": uid,
                "width": size[0] if size else None,
                "height": size[1] if size else None,
            }
        }
        drafts.append(
            TaskDraft(
                uid, data, meta, result, _restored(details.annotations.get(uid) or [], report)
            )
        )
    return drafts


def build(query: QueryFn, image_url: Callable[[str], str], opts: TaskOptions) -> TaskList:
    """Tasks for the images the options select (the gateway's task list and the connector's push)."""
    cfg = config_of(opts.label_config)
    out = TaskList(tasks=[])
    uids = select_images(query, opts)
    for start in range(0, len(uids), PAGE):
        drafts = build_page(
            query,
            uids[start : start + PAGE],
            cfg,
            image_url,
            properties=opts.properties,
            predictions=opts.predictions,
            pred_constraints=opts.pred_constraints,
            readonly=opts.readonly,
            report=out.report,
        )
        out.tasks += [d.as_import(opts.model_version) for d in drafts]
    problem = out.report.strict_problem() if opts.strict_labels else None
    if problem:
        raise TaskListError(
            problem + ". Add them to the labeling config, narrow the regions with "
            "pred_constraints, or leave predictions out. Nothing was sent for this batch."
        )
    return out


def to_json(tasks: list[dict]) -> str:
    return json.dumps(tasks, separators=(",", ":"))


def to_csv(tasks: list[dict]) -> str:
    """One row per task with its data fields (CSV carries no predictions)."""
    columns: list[str] = []
    for t in tasks:
        columns += [k for k in t["data"] if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for t in tasks:
        writer.writerow(
            {
                k: v if not isinstance(v, dict | list) else json.dumps(v)
                for k, v in t["data"].items()
            }
        )
    return buf.getvalue()
