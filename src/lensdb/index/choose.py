"""Which images to label, chosen by their embeddings in a descriptor set.

Runs against any query function (the engine's `Database.query`, or a client's `query`), so
`lensdb select`, the gateway's task list and `lensdb labelstudio tasks|push` share it. Each
image counts through the descriptor of the set connected to it (as the SDK's CLIP loader
connects them); the choosing itself is lensdb.index.selection.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from lensdb.errors import command_answer
from lensdb.index import selection

QueryFn = Callable[..., tuple[Any, list[bytes]]]
MODES = ("diverse", "dedup", "similar", "disagree")


@dataclass(frozen=True)
class Choice:
    set: str
    mode: str = "diverse"
    count: int | None = None  # diverse, similar: how many (None: every image, in order)
    threshold: float = 0.05  # dedup: the dissimilarity under which two images are duplicates
    like: tuple[str, ...] = ()  # similar: example images' _uniqueids
    label_property: str | None = None  # disagree: the image property holding its label
    neighbours: int = 5  # disagree: how many neighbours vote

    @classmethod
    def parse(cls, obj: object) -> Choice:
        """From a JSON object {set, mode, n, threshold, like, label_property, k}."""
        if isinstance(obj, str):
            try:
                obj = json.loads(obj)
            except ValueError:
                raise ValueError(
                    'select must be a JSON object like {"set": "clip", "mode": "diverse", "n": 100}'
                ) from None
        if not isinstance(obj, dict):
            raise ValueError("select must be an object {set, mode, n, threshold, like}")
        unknown = sorted(
            set(obj) - {"set", "mode", "n", "threshold", "like", "label_property", "k"}
        )
        if unknown:
            raise ValueError(f"unknown key(s) in select: {', '.join(unknown)}")
        name, mode = obj.get("set"), obj.get("mode", "diverse")
        if not isinstance(name, str) or not name:
            raise ValueError("select.set must name a descriptor set")
        if mode not in MODES:
            raise ValueError(f"select.mode must be one of {', '.join(MODES)}")
        n, k = obj.get("n"), obj.get("k", 5)
        for key, v in (("n", n), ("k", k)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ValueError(f"select.{key} must be a whole number of at least 1")
        threshold = obj.get("threshold", 0.05)
        if isinstance(threshold, bool) or not isinstance(threshold, int | float):
            raise ValueError("select.threshold must be a number")
        like = obj.get("like", [])
        like = [like] if isinstance(like, str) else like
        if not isinstance(like, list) or not all(isinstance(u, str) for u in like):
            raise ValueError("select.like must be an image _uniqueid or a list of them")
        if mode == "similar" and not like:
            raise ValueError("select.like is required with mode similar")
        prop = obj.get("label_property")
        if prop is not None and not isinstance(prop, str):
            raise ValueError("select.label_property must be a property name")
        return cls(name, mode, n, float(threshold), tuple(like), prop, k)


@dataclass(frozen=True)
class Embeddings:
    uniqueids: list[str]  # images, in insertion order of their descriptors
    vectors: np.ndarray  # one row per image
    metric: str  # the set's first metric
    labels: list[str | None]


def embeddings_query(
    set_name: str, constraints: dict | None = None, label_property: str | None = None
) -> list[dict]:
    """The set's metric and size, the images matching `constraints`, their descriptors in the set,
    and each descriptor's image (with its label property): read by `parse_embeddings`."""
    find_image: dict = {"_ref": 1, "uniqueids": True}
    if constraints:
        find_image["constraints"] = constraints
    return [
        {"FindDescriptorSet": {"with_name": set_name, "metrics": True, "dimensions": True}},
        {"FindImage": find_image},
        {
            "FindDescriptor": {
                "set": set_name,
                "is_connected_to": {"ref": 1},
                "blobs": True,
                "uniqueids": True,
                "labels": True,
                "_ref": 2,
            }
        },
        {
            "FindImage": {
                "is_connected_to": {"ref": 2},
                "group_by_source": True,
                "uniqueids": True,
                "results": {"list": [label_property] if label_property else []},
            }
        },
    ]


def _found(response: list[dict], command: str, nth: int = 0) -> Any:
    """The entities of the `nth` answer to `command`; a clear error when the answer lacks it."""
    body = command_answer(response, command, nth)
    if body is None:
        raise ValueError(f"the answer holds no {command} (number {nth + 1})")
    return body.get("entities")


def parse_embeddings(
    response: object, blobs: list[bytes], set_name: str, label_property: str | None = None
) -> Embeddings:
    """The answer to `embeddings_query`: one row per image, in the order of its descriptors."""
    if not isinstance(response, list):
        raise ValueError(
            response.get("info", str(response)) if isinstance(response, dict) else str(response)
        )
    sets = _found(response, "FindDescriptorSet") or []
    if not sets:
        raise ValueError(f"no descriptor set named {set_name!r}")
    metric, dims = sets[0]["_metrics"][0], sets[0]["_dimensions"]
    descs = _found(response, "FindDescriptor") or []
    groups = _found(response, "FindImage", nth=1) or {}  # the images grouped by descriptor
    uids: list[str] = []
    seen: set[str] = set()
    labels: list[str | None] = []
    vecs: list[np.ndarray] = []
    for d in descs:
        for img in groups.get(d["_uniqueid"], []):
            if img["_uniqueid"] in seen:
                continue  # an image with several descriptors in the set counts once
            seen.add(img["_uniqueid"])
            uids.append(img["_uniqueid"])
            label = img.get(label_property) if label_property else d.get("_label")
            labels.append(None if label in (None, "None") else str(label))
            vecs.append(np.frombuffer(blobs[d["_blob_index"]], np.float32))
    matrix = np.stack(vecs) if vecs else np.empty((0, dims), np.float32)
    return Embeddings(uids, matrix, metric, labels)


def embeddings(
    query: QueryFn,
    set_name: str,
    constraints: dict | None = None,
    label_property: str | None = None,
) -> Embeddings:
    """The images (matching `constraints`) that have a descriptor in the set, with it."""
    response, blobs = query(embeddings_query(set_name, constraints, label_property), [])
    return parse_embeddings(response, blobs, set_name, label_property)


def choose(query: QueryFn, c: Choice, constraints: dict | None = None) -> list[dict[str, Any]]:
    """The chosen images in order, each `{"_uniqueid", ...why}`."""
    e = embeddings(query, c.set, constraints, c.label_property)
    rows, vectors = e.uniqueids, e.vectors
    count = c.count if c.count is not None else len(rows)
    if c.mode == "diverse":
        return [
            {"_uniqueid": rows[i], "rank": n + 1}
            for n, i in enumerate(selection.diverse(vectors, count, e.metric))
        ]
    if c.mode == "dedup":
        kept, dup_of = selection.dedup(vectors, c.threshold, e.metric)
        return [
            {"_uniqueid": rows[i], "duplicates": [rows[d] for d, k in dup_of.items() if k == i]}
            for i in kept
        ][:count]
    if c.mode == "disagree":
        found = selection.disagreements(vectors, e.labels, c.neighbours, e.metric)
        return [
            {
                "_uniqueid": rows[i],
                "label": e.labels[i],
                "neighbours_say": other,
                "share": round(share, 3),
            }
            for i, other, share in found
        ][:count]
    pos = {u: i for i, u in enumerate(rows)}
    missing = [u for u in c.like if u not in pos]
    if not c.like or missing:
        raise ValueError(
            f"similar needs example images that have a descriptor in {c.set!r}"
            + (f"; not found: {', '.join(missing)}" if missing else "")
        )
    examples = vectors[[pos[u] for u in c.like]]
    return [
        {"_uniqueid": rows[i]}
        for i in selection.similar(vectors, examples, count + len(c.like), e.metric)
        if rows[i] not in c.like
    ][:count]
