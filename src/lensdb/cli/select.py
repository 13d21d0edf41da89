"""`lensdb select`: choose images to label from their embeddings in a descriptor set."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from lensdb.cli import main


@main.command()
@click.option(
    "--data",
    envvar="LENSDB_DATA",
    default="./data",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Database folder.",
)
@click.option("--set", "set_name", required=True, help="The descriptor set holding the embeddings.")
@click.option(
    "--mode",
    type=click.Choice(["diverse", "dedup", "similar", "disagree"]),
    default="diverse",
    show_default=True,
    help="diverse: spread over the set, most informative first; dedup: skip images "
    "within --threshold of one already listed; similar: nearest to the --like images; "
    "disagree: labelled images whose nearest neighbours mostly carry another label.",
)
@click.option(
    "-n",
    "count",
    type=click.IntRange(min=1),
    default=None,
    help="How many images to list (default: diverse and similar 100, others all).",
)
@click.option(
    "--threshold",
    type=float,
    default=0.05,
    show_default=True,
    help="dedup: the dissimilarity under which two images are duplicates (squared L2 "
    "for L2 sets, 1 - cosine otherwise).",
)
@click.option("--like", multiple=True, help="similar: an example image's _uniqueid (repeatable).")
@click.option("--constraints", default=None, help="Only images matching these constraints (JSON).")
@click.option(
    "--label-property",
    default=None,
    help="disagree: the image property holding its label (default: the descriptor's "
    "label, as AddDescriptor's 'label' sets it).",
)
@click.option(
    "-k",
    "neighbours",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="disagree: how many neighbours vote.",
)
@click.option(
    "--ls-url",
    default=None,
    metavar="URL",
    help="With --project: link each image pushed to that Label Studio project to its task.",
)
@click.option("--project", "project_id", type=int, default=None, help="The Label Studio project.")
def select(
    data: Path,
    set_name: str,
    mode: str,
    count: int | None,
    threshold: float,
    like: tuple[str, ...],
    constraints: str | None,
    label_property: str | None,
    neighbours: int,
    ls_url: str | None,
    project_id: int | None,
) -> None:
    """Print the images to label, one JSON object a line: _uniqueid and why it was chosen.

    Each image counts through the descriptor of SET connected to it (as the SDK's CLIP loader
    connects them). The same choice is the `select` parameter of the gateway's task list and
    the --select option of `lensdb labelstudio tasks|push`. Examples:

      lensdb select --set ViT-B/16 --mode diverse -n 50

      lensdb select --set ViT-B/16 --mode dedup --threshold 0.02

      lensdb select --set ViT-B/16 --mode similar --like 2.0.17 -n 20

      lensdb select --set ViT-B/16 --mode disagree --label-property class -k 5 \\
          --ls-url http://ls:8080 --project 3      # with links to the tasks to review
    """
    from lensdb import Database
    from lensdb.index.choose import Choice, choose

    if count is None and mode in ("diverse", "similar"):
        count = 100
    spec = {
        "set": set_name,
        "mode": mode,
        "threshold": threshold,
        "like": list(like),
        "label_property": label_property,
        "k": neighbours,
        "n": count,
    }
    try:
        choice = Choice.parse(spec)
        where = json.loads(constraints) if constraints else None
        with Database(data) as db:
            chosen = choose(db.query, choice, where)
            tasks = _pushed(db, ls_url, project_id) if ls_url and project_id is not None else {}
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    for item in chosen:
        tid = tasks.get(item["_uniqueid"])
        if tid is not None:
            assert ls_url is not None
            item["task_id"] = tid
            item["task_url"] = f"{ls_url.rstrip('/')}/projects/{project_id}/data?task={tid}"
        sys.stdout.write(json.dumps(item) + "\n")


def _pushed(db, ls_url: str, project_id: int) -> dict[str, int]:  # noqa: ANN001 - a Database
    """image _uniqueid -> Label Studio task id, as `lensdb labelstudio push` recorded them."""
    from lensdb.connector import state

    response, _ = db.query(state.sent_images_query(ls_url, project_id))
    if not isinstance(response, list):
        raise ValueError(response.get("info", str(response)))
    return state.sent_images(response)
