"""`lensdb select`: choose images to label from their embeddings in a descriptor set."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from lensdb.cli import main


@main.command()
@click.option("--data", envvar="LENSDB_DATA", default="./data", show_default=True,
              type=click.Path(file_okay=False, path_type=Path), help="Database folder.")
@click.option("--set", "set_name", required=True, help="The descriptor set holding the embeddings.")
@click.option("--mode", type=click.Choice(["diverse", "dedup", "similar", "disagree"]),
              default="diverse", show_default=True,
              help="diverse: spread over the set, most informative first; dedup: skip images "
              "within --threshold of one already listed; similar: nearest to the --like images; "
              "disagree: labelled images whose nearest neighbours mostly carry another label.")
@click.option("-n", "count", type=click.IntRange(min=1), default=100, show_default=True,
              help="How many images to list (diverse, similar).")
@click.option("--threshold", type=float, default=0.05, show_default=True,
              help="dedup: the dissimilarity under which two images are duplicates (squared L2 "
              "for L2 sets, 1 - cosine otherwise).")
@click.option("--like", multiple=True, help="similar: an example image's _uniqueid (repeatable).")
@click.option("--constraints", default=None, help="Only images matching these constraints (JSON).")
@click.option("--label-property", default=None,
              help="disagree: the image property holding its label (default: the descriptor's "
              "label, as AddDescriptor's 'label' sets it).")
@click.option("-k", "neighbours", type=click.IntRange(min=1), default=5, show_default=True,
              help="disagree: how many neighbours vote.")
def select(data: Path, set_name: str, mode: str, count: int, threshold: float,
           like: tuple[str, ...], constraints: str | None, label_property: str | None,
           neighbours: int) -> None:
    """Print the images to label, one JSON object a line: _uniqueid and why it was chosen.

    Each image counts through the descriptor of SET connected to it (as the SDK's CLIP loader
    connects them). Examples:

      lensdb select --set ViT-B/16 --mode diverse -n 50

      lensdb select --set ViT-B/16 --mode dedup --threshold 0.02

      lensdb select --set ViT-B/16 --mode similar --like 2.0.17 -n 20

      lensdb select --set ViT-B/16 --mode disagree --label-property class -k 5
    """
    from lensdb import Database
    from lensdb.index import selection

    with Database(data) as db:
        try:
            rows, vectors, metric, labels = _embeddings(db, set_name, constraints,
                                                        label_property)
        except ValueError as e:
            raise click.ClickException(str(e)) from None
    if mode == "diverse":
        out = [{"_uniqueid": rows[i], "rank": n + 1}
               for n, i in enumerate(selection.diverse(vectors, count, metric))]
    elif mode == "dedup":
        kept, dup_of = selection.dedup(vectors, threshold, metric)
        out = [{"_uniqueid": rows[i], "duplicates": [rows[d] for d, k in dup_of.items() if k == i]}
               for i in kept]
    elif mode == "disagree":
        out = [{"_uniqueid": rows[i], "label": labels[i], "neighbours_say": other,
                "share": round(share, 3)}
               for i, other, share in selection.disagreements(vectors, labels, neighbours, metric)]
    else:
        pos = {u: i for i, u in enumerate(rows)}
        missing = [u for u in like if u not in pos]
        if not like or missing:
            raise click.ClickException(f"--like needs images that have a descriptor in {set_name!r}"
                                       + (f"; not found: {', '.join(missing)}" if missing else ""))
        examples = vectors[[pos[u] for u in like]]
        out = [{"_uniqueid": rows[i]} for i in selection.similar(vectors, examples, count, metric)
               if rows[i] not in like]
    for item in out:
        sys.stdout.write(json.dumps(item) + "\n")


def _embeddings(db, set_name: str, constraints: str | None,  # noqa: ANN202 - private helper
                label_property: str | None):
    """(image _uniqueids, their vectors as rows, the set's metric, their labels)."""
    import numpy as np

    find_image: dict = {"_ref": 1, "uniqueids": True}
    if constraints:
        find_image["constraints"] = json.loads(constraints)
    r, blobs = db.query([
        {"FindDescriptorSet": {"with_name": set_name, "metrics": True, "dimensions": True}},
        {"FindImage": find_image},
        {"FindDescriptor": {"set": set_name, "is_connected_to": {"ref": 1}, "blobs": True,
                            "uniqueids": True, "labels": True, "_ref": 2}},
        {"FindImage": {"is_connected_to": {"ref": 2}, "group_by_source": True, "uniqueids": True,
                       "results": {"list": [label_property] if label_property else []}}},
    ])
    if not isinstance(r, list):
        raise ValueError(r.get("info", str(r)))
    sets = r[0]["FindDescriptorSet"].get("entities") or []
    if not sets:
        raise ValueError(f"no descriptor set named {set_name!r}")
    metric, dims = sets[0]["_metrics"][0], sets[0]["_dimensions"]
    descs = r[2]["FindDescriptor"].get("entities") or []
    groups = r[3]["FindImage"].get("entities") or {}
    rows: list[str] = []
    labels: list[str | None] = []
    vecs: list = []
    seen: set[str] = set()
    for d in descs:
        for img in groups.get(d["_uniqueid"], []):
            if img["_uniqueid"] not in seen:  # an image with several descriptors counts once
                seen.add(img["_uniqueid"])
                rows.append(img["_uniqueid"])
                label = img.get(label_property) if label_property else d.get("_label")
                labels.append(None if label in (None, "None") else str(label))
                vecs.append(np.frombuffer(blobs[d["_blob_index"]], np.float32))
    matrix = np.stack(vecs) if vecs else np.empty((0, dims), np.float32)
    return rows, matrix, metric, labels
