"""Label Studio tasks from a lensdb query: signed image URLs, chosen properties, regions as predictions.

Synchronous and free of HTTP: it gets a query function (engine or client) and a URL maker, so the
gateway runs it in a worker thread.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lensdb import media
from lensdb.index.choose import Choice, choose
from lensdb.labelstudio import queries as Q
from lensdb.labelstudio.labelconfig import Control, LabelConfig, parse_label_config
from lensdb.labelstudio.mapping import box_result, polygon_results

QueryFn = Callable[[list[dict], list[bytes] | None], tuple[Any, list[bytes]]]
PAGE = 1000
MODEL_VERSION = "lensdb"


class TaskListError(ValueError):
    """The request cannot be turned into tasks; the message says what to change."""


@dataclass
class TaskOptions:
    constraints: dict | None = None
    uniqueids: list[str] | None = None  # instead of constraints: exactly these images, in this order
    select: Choice | None = None  # images chosen by their embeddings (among those constraints select)
    predictions: bool = False
    pred_constraints: dict | None = None
    properties: list[str] = field(default_factory=list)
    label_config: str | None = None
    limit: int | None = None
    offset: int = 0
    strict_labels: bool = False  # refuse (instead of leave out) regions whose label the config lacks
    model_version: str = MODEL_VERSION
    readonly: bool = False


@dataclass
class TaskList:
    tasks: list[dict]
    unknown_labels: Counter = field(default_factory=Counter)
    no_control: Counter = field(default_factory=Counter)

    def warnings(self) -> list[str]:
        out = []
        if self.unknown_labels:
            labels = ", ".join(f"{k} ({v})" for k, v in self.unknown_labels.most_common())
            out.append(f"regions whose label is not in the labeling config were left out: {labels}")
        for kind, n in self.no_control.items():
            out.append(f"{n} {kind}(s) left out: the labeling config has no "
                       f"{'RectangleLabels' if kind == 'box' else 'PolygonLabels'} control")
        return out


def default_config() -> LabelConfig:
    """Without a labeling config: `$image`, boxes on control `label`, polygons on control `polygon`."""
    return LabelConfig(
        controls=[Control("label", "rectanglelabels", "image"), Control("polygon", "polygonlabels", "image")],
        objects={"image": ("image", "$image")},
    )


def config_of(label_config: str | None) -> LabelConfig:
    if not label_config:
        return default_config()
    cfg = parse_label_config(label_config)
    if not cfg.objects:
        raise TaskListError("the labeling config could not be read (no object tag such as <Image name=... "
                            "value=\"$image\"/>)")
    return cfg


def _check(response: Any) -> list:
    if not isinstance(response, list) or any(
        isinstance(b, dict) and b.get("status", 0) < 0 for item in response for b in item.values()
    ):
        info = response.get("info") if isinstance(response, dict) else response
        raise TaskListError(f"lensdb refused the query: {info}")
    return response


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
        return chosen[opts.offset:end]
    out: list[str] = []
    offset = opts.offset
    while opts.limit is None or len(out) < opts.limit:
        n = PAGE if opts.limit is None else min(PAGE, opts.limit - len(out))
        response, _ = query(Q.list_images_query(opts.constraints, Q.UNIQUEID, n, offset), None)
        entities = _check(response)[0]["FindImage"].get("entities") or []
        out += [e["_uniqueid"] for e in entities]
        offset += len(entities)
        if len(entities) < n:
            break
    return out


def _sizes_from_blobs(query: QueryFn, uids: list[str]) -> dict[str, tuple[int, int]]:
    # Only for images with regions but no width/height properties: read their headers.
    response, blobs = query([{"FindImage": {"constraints": {Q.UNIQUEID: ["in", uids]}, "blobs": True,
                                            "uniqueids": True}}], None)
    entities = _check(response)[0]["FindImage"].get("entities") or []
    out = {}
    for e, blob in zip(entities, blobs, strict=False):
        try:
            info = media.probe(blob)
            out[e["_uniqueid"]] = (info.width, info.height)
        except media.MediaError:
            continue
    return out


def build(query: QueryFn, image_url: Callable[[str], str], opts: TaskOptions) -> TaskList:
    cfg = config_of(opts.label_config)
    data_key = cfg.image_data_key()
    box_ctrl, poly_ctrl = cfg.box_control(), cfg.polygon_control()
    out = TaskList(tasks=[])
    uids = select_images(query, opts)
    for start in range(0, len(uids), PAGE):
        chunk = uids[start:start + PAGE]
        q = Q.image_details_query(chunk, -1, opts.properties, opts.predictions, opts.pred_constraints)
        response, _ = query(q, None)
        _check(response)
        images = {e["_uniqueid"]: e for e in response[0]["FindImage"].get("entities") or []}
        boxes = response[2]["FindBoundingBox"].get("entities") or {} if opts.predictions else {}
        polys = response[3]["FindPolygon"].get("entities") or {} if opts.predictions else {}
        sizeless = [u for u in chunk if u in images and (boxes.get(u) or polys.get(u))
                    and not _size(images[u])]
        probed = _sizes_from_blobs(query, sizeless) if sizeless else {}
        for uid in chunk:
            img = images.get(uid)
            if img is None:
                continue  # deleted meanwhile, or a uniqueid that is no image
            size = _size(img) or probed.get(uid)
            data: dict[str, Any] = {data_key: image_url(uid)}
            for name in opts.properties:
                if img.get(name) is not None:
                    data[name] = _plain(img[name])
            task: dict[str, Any] = {"data": data, "meta": {"lensdb": {
                "uniqueid": uid, "width": size[0] if size else None, "height": size[1] if size else None}}}
            result = _predictions(boxes.get(uid) or [], polys.get(uid) or [], size, box_ctrl, poly_ctrl,
                                  opts, out)
            if result:
                task["predictions"] = [{"model_version": opts.model_version, "result": result}]
            out.tasks.append(task)
    if opts.strict_labels and (out.unknown_labels or out.no_control):
        problems = []
        if out.unknown_labels:
            labels = ", ".join(f"{k} ({v} region(s))" for k, v in out.unknown_labels.most_common())
            problems.append(f"the project's labeling config lacks these labels of predicted regions: {labels}")
        for kind, n in out.no_control.items():
            tag = "RectangleLabels" if kind == "box" else "PolygonLabels"
            problems.append(f"{n} {kind}(s) cannot be predictions: the labeling config has no {tag} control")
        raise TaskListError("; ".join(problems) + ". Add them to the labeling config, narrow the regions with "
                            "pred_constraints, or leave predictions out. Nothing was sent for this batch.")
    return out


def _size(img: dict) -> tuple[float, float] | None:
    w, h = img.get("width"), img.get("height")
    ok = all(isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in (w, h))
    return (float(w), float(h)) if ok else None


def _predictions(boxes: list[dict], polys: list[dict], size: tuple[float, float] | None,
                 box_ctrl: Control | None, poly_ctrl: Control | None, opts: TaskOptions,
                 out: TaskList) -> list[dict]:
    if size is None:
        return []
    w, h = size
    result: list[dict] = []
    for kind, regions, ctrl in (("box", boxes, box_ctrl), ("polygon", polys, poly_ctrl)):
        if regions and ctrl is None:
            out.no_control[kind] += len(regions)
            continue
        for r in regions:
            assert ctrl is not None
            label = r.get("_label")
            if ctrl.labels and label and label not in ctrl.labels:
                out.unknown_labels[label] += 1
                continue
            if kind == "box":
                result.append(box_result(r, w, h, ctrl, opts.readonly))
            else:
                result.extend(polygon_results(r, w, h, ctrl, opts.readonly))
    return result


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
        writer.writerow({k: v if not isinstance(v, dict | list) else json.dumps(v) for k, v in t["data"].items()})
    return buf.getvalue()
