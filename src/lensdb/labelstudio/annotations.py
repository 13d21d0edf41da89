"""Label Studio annotations -> lensdb transactions: the one place that decides what is written.

Plain data in (Label Studio's API JSON for tasks, annotations and projects), query-language commands
out, no Django and no I/O. The plugin's target storage turns its models into these dicts at its edge;
the connector's `pull` and the gateway's webhook pass what Label Studio's API and webhooks send. So all
three write exactly the same entities, regions and properties.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from lensdb.labelstudio import queries as Q
from lensdb.labelstudio.labelconfig import parse_label_config
from lensdb.labelstudio.mapping import SCALAR_TYPES, parse_results, property_name

_MEDIA_PATH = re.compile(r"/media/images/([0-9]+\.[0-9]+\.[0-9]+)(?:[?#]|$)")
IMAGE_URI_SCHEME = "lensdb"
# Parameters whose integer value names an earlier command's `_ref`.
_REF_KEYS = ("ref", "image_ref", "src", "dst")


def image_uri(host: str, port: int, uniqueid: str) -> str:
    """The task value the plugin stores for an image; Label Studio turns it into its /tasks/<id>/resolve/."""
    return f"{IMAGE_URI_SCHEME}://{host}:{port}/image/{uniqueid}"


def parse_image_uri(uri: Any) -> tuple[str, str] | None:
    """(netloc, uniqueid) of a lensdb image URI, or None."""
    if not isinstance(uri, str) or not uri.startswith(IMAGE_URI_SCHEME + "://"):
        return None
    parts = urlsplit(uri)
    segs = parts.path.strip("/").split("/")
    if len(segs) != 2 or segs[0] != "image" or not segs[1]:
        return None
    return parts.netloc, segs[1]


def image_of_task(task: dict) -> tuple[str | None, tuple[float, float] | None]:
    """The lensdb image behind a task (uniqueid, (width, height)).

    From meta.lensdb (written by the plugin's sync and by push), else from an image URL in the task
    data: the plugin's lensdb:// URI or the gateway's /media/images/<uniqueid> link.
    """
    meta = task.get("meta") if isinstance(task.get("meta"), dict) else {}
    info = meta.get("lensdb") if isinstance(meta, dict) else None
    if isinstance(info, dict) and info.get("uniqueid"):
        w, h = info.get("width"), info.get("height")
        return str(info["uniqueid"]), ((float(w), float(h)) if w and h else None)
    for value in (task.get("data") or {}).values():
        if not isinstance(value, str):
            continue
        m = _MEDIA_PATH.search(value)
        if m:
            return m.group(1), None
        parsed = parse_image_uri(value)
        if parsed:
            return parsed[1], None
    return None, None


@functools.lru_cache(maxsize=64)
def removable_properties(label_config: str | None) -> tuple[str, ...]:
    """The scalar properties a labeling config can produce. Cached: every annotation of a project
    shares one config, and parsing its XML for each one was a fifth of a full pull's own CPU."""
    cfg = parse_label_config(label_config)
    return tuple(property_name(c.type, c.name) for c in cfg.controls if c.type in SCALAR_TYPES)


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time from Label Studio or from lensdb (`{"_date": ...}`), or None."""
    if isinstance(value, dict):
        value = value.get("_date")
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _user(value: Any, emails: dict[int, str]) -> str:
    if isinstance(value, dict):
        return str(value.get("email") or value.get("id") or "")
    if isinstance(value, int):
        return emails.get(value, str(value))
    return str(value or "")


def save_query(
    ann: dict,
    task: dict,
    project: dict,
    emails: dict[int, str] | None = None,
    instance: str = "",
    new: bool = False,
) -> list[dict]:
    """The transaction that makes lensdb match one Label Studio annotation.

    `ann`, `task` and `project` are Label Studio's API JSON (the plugin converts its models to the
    same shape); `emails` turns user ids into e-mails; `instance` names the Label Studio installation
    (see `queries.annotation_scope`); `new` says lensdb was seen without this annotation (see
    `queries.save_annotation_query`).
    """
    emails = emails or {}
    uid, size = image_of_task(task)
    result = ann.get("result") if isinstance(ann.get("result"), list) else []
    task_id = int(ann.get("task") or task.get("id"))
    project_id = int(ann.get("project") or project.get("id"))
    doc = {
        "id": ann["id"],
        "task": task_id,
        "project": project_id,
        "result": result,
        "completed_by": _user(ann.get("completed_by"), emails),
        "updated_by": _user(ann.get("updated_by"), emails),
        "was_cancelled": bool(ann.get("was_cancelled", False)),
        "ground_truth": bool(ann.get("ground_truth", False)),
        "lead_time": ann.get("lead_time"),
        "created_at": ann.get("created_at"),
        "updated_at": ann.get("updated_at"),
    }
    record = Q.AnnotationRecord(
        id=int(ann["id"]),
        project_id=project_id,
        task_id=task_id,
        result=result,
        project_title=str(project.get("title") or ""),
        completed_by=doc["completed_by"],
        updated_by=doc["updated_by"],
        created_at=doc["created_at"],
        updated_at=doc["updated_at"],
        was_cancelled=doc["was_cancelled"],
        ground_truth=doc["ground_truth"],
        lead_time=doc["lead_time"],
        document=doc,
        instance=instance,
    )
    return Q.save_annotation_query(
        record,
        parse_results(result),
        uid,
        size,
        removable_properties(project.get("label_config")),
        new=new,
    )


def delete_query(annotation_id: int, project_id: int, instance: str = "") -> list[dict]:
    return Q.delete_annotation_query(annotation_id, project_id, instance)


def task_annotations_query(
    project_id: int, op: str, task_ids: Iterable[int], instance: str = ""
) -> list[dict]:
    """Find the annotations lensdb holds for tasks of a project whose id is ("in") or is not
    ("not in") among these; `annotation_ids` reads the answer."""
    return [
        {
            "FindEntity": {
                "with_class": Q.ANNOTATION_CLASS,
                "constraints": {
                    **Q.annotation_scope(project_id, instance),
                    "LS_task_id": [op, sorted(task_ids)],
                },
                "results": {"list": ["LS_id"]},
            }
        }
    ]


def first_annotation_query(project_id: int, instance: str = "") -> list[dict]:
    """Find one annotation lensdb holds for a project, if any; `annotation_ids` reads the answer."""
    return [
        {
            "FindEntity": {
                "with_class": Q.ANNOTATION_CLASS,
                "constraints": Q.annotation_scope(project_id, instance),
                "results": {"list": ["LS_id"], "limit": 1},
            }
        }
    ]


def stored_versions_query(project_id: int, instance: str = "") -> list[dict]:
    """The annotations lensdb holds for a project, with their versions; `stored_versions` reads it."""
    return [
        {
            "FindEntity": {
                "with_class": Q.ANNOTATION_CLASS,
                "constraints": Q.annotation_scope(project_id, instance),
                "results": {"list": ["LS_id", "LS_updated_at"]},
            }
        }
    ]


def annotation_ids(response: list[dict]) -> list[int]:
    return [int(e["LS_id"]) for e in Q.entities(response, "FindEntity")]


def stored_versions(response: list[dict]) -> dict[str, str | None]:
    """LS_id -> LS_updated_at (ISO text) from `stored_versions_query`."""
    return {
        str(e.get("LS_id")): (e.get("LS_updated_at") or {}).get("_date")
        for e in Q.entities(response, "FindEntity")
    }


def _max_ref(commands: Iterable[dict]) -> int:
    top = 0
    for cmd in commands:
        body = next(iter(cmd.values()))
        if isinstance(body, dict) and isinstance(body.get("_ref"), int):
            top = max(top, body["_ref"])
    return top


def _shift(body: dict, base: int) -> dict:
    out = dict(body)
    if isinstance(out.get("_ref"), int):
        out["_ref"] += base
    for key in _REF_KEYS:
        if isinstance(out.get(key), int) and not isinstance(out.get(key), bool):
            out[key] += base
    for key in ("is_connected_to", "connect"):
        if isinstance(out.get(key), dict) and isinstance(out[key].get("ref"), int):
            out[key] = {**out[key], "ref": out[key]["ref"] + base}
    if isinstance(out.get("if_not_found"), int) and not isinstance(out["if_not_found"], bool):
        out["if_not_found"] += base
    return out


def combine(queries: Iterable[list[dict]]) -> list[dict]:
    """Several transactions' commands as one, with `_ref` numbers moved apart."""
    out: list[dict] = []
    base = 0
    for q in queries:
        out += [{name: _shift(body, base)} for cmd in q for name, body in cmd.items()]
        base += _max_ref(q)
    return out
