"""What the connector remembers in lensdb: which image went to which Label Studio task, and pull cursors.

- entity `LS_push` {LS_url, LS_project_id, LS_task_id, LS_image} --LS_push_image--> the `_Image`
- entity `LS_sync` {LS_url, LS_project_id, LS_cursor} per Label Studio project (the last pull's cursor)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from lensdb.labelstudio import queries as Q

PUSH_CLASS = "LS_push"
PUSH_IMAGE = "LS_push_image"
SYNC_CLASS = "LS_sync"


def instance_key(ls_url: str) -> str:
    """Label Studio's address normalised, so that http://Host:8080/ and http://host:8080 are one instance."""
    parts = urlsplit(ls_url.strip())
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path.rstrip('/')}"


# Lookups the connector makes for every image, annotation and region: without these indexes a
# push or pull of N items scans N objects per item.
INDEXES = [
    (
        PUSH_CLASS,
        "LS_image",
    ),  # not LS_project_id: the planner would pick it and scan a whole project
    ("LS_annotation", "LS_id"),
    ("LS_annotation", "LS_task_id"),
    ("_BoundingBox", "LS_id"),
    ("_Polygon", "LS_id"),
    ("LS_keypoint", "LS_id"),
]


def ensure_indexes_query() -> list[dict]:
    """CreateIndex for each lookup key (status 2 when it exists already)."""
    return [
        {"CreateIndex": {"index_type": "entity", "class": cls, "property_key": key}}
        for cls, key in INDEXES
    ]


def _key(ls_url: str, project_id: int) -> dict:
    return {"LS_url": ["==", instance_key(ls_url)], "LS_project_id": ["==", int(project_id)]}


def sent_images_query(ls_url: str, project_id: int) -> list[dict]:
    return [
        {
            "FindEntity": {
                "with_class": PUSH_CLASS,
                "constraints": _key(ls_url, project_id),
                "results": {"list": ["LS_image", "LS_task_id"]},
            }
        }
    ]


def sent_images(response: Any) -> dict[str, int]:
    """image _uniqueid -> task id, from the answer to `sent_images_query`."""
    return {
        e["LS_image"]: e.get("LS_task_id")
        for e in Q.entities(response, "FindEntity")
        if e.get("LS_image")
    }


def record_push_query(ls_url: str, project_id: int, pairs: Iterable[tuple[str, int]]) -> list[dict]:
    """One transaction recording that these images became these tasks."""
    q: list[dict] = []
    key = instance_key(ls_url)
    for i, (uid, task_id) in enumerate(pairs):
        ref = i + 1
        q.append(
            {"FindImage": {"_ref": ref, "blobs": False, "constraints": {"_uniqueid": ["==", uid]}}}
        )
        props = {
            "LS_url": key,
            "LS_project_id": int(project_id),
            "LS_task_id": int(task_id),
            "LS_image": uid,
        }
        q.append(
            {
                "AddEntity": {
                    "class": PUSH_CLASS,
                    "properties": props,
                    "if_not_found": {
                        "LS_url": ["==", key],
                        "LS_project_id": ["==", int(project_id)],
                        "LS_image": ["==", uid],
                    },
                    "connect": {"ref": ref, "class": PUSH_IMAGE},
                }
            }
        )
    return q


def cursor_query(ls_url: str, project_id: int) -> list[dict]:
    return [
        {
            "FindEntity": {
                "with_class": SYNC_CLASS,
                "constraints": _key(ls_url, project_id),
                "results": {"list": ["LS_cursor", "LS_read_at"], "limit": 1},
            }
        }
    ]


def cursor_of(response: Any) -> tuple[str | None, str | None]:
    """(newest task change seen, Label Studio's time when it was read) of the last pull."""
    entities = Q.entities(response, "FindEntity")
    return (
        (entities[0].get("LS_cursor"), entities[0].get("LS_read_at")) if entities else (None, None)
    )


def set_cursor_commands(
    ls_url: str, project_id: int, cursor: str, read_at: str | None, ref: int
) -> list[dict]:
    """Commands (using `_ref` `ref`) that store the pull cursor; appended to a pull batch's transaction."""
    key = instance_key(ls_url)
    props = {"LS_cursor": cursor, **({"LS_read_at": read_at} if read_at else {})}
    return [
        {
            "AddEntity": {
                "_ref": ref,
                "class": SYNC_CLASS,
                "properties": {"LS_url": key, "LS_project_id": int(project_id), **props},
                "if_not_found": _key(ls_url, project_id),
            }
        },
        {"UpdateEntity": {"ref": ref, "properties": props}},
    ]
