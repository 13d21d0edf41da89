"""`lensdb query`: run one JSON query against a database folder, in-process."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from lensdb.cli import main
from lensdb.cli.common import config_error, data_option


@main.command()
@data_option
@click.option(
    "--blob",
    "blob_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A file to send as an input blob; repeat in command order.",
)
@click.option(
    "--save-blobs",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write returned blobs into this folder as blob-<n>.",
)
@click.argument("query", required=False)
def query(
    data: str,
    blobs: str | None,
    blob_files: tuple[Path, ...],
    save_blobs: Path | None,
    query: str | None,
) -> None:
    """Run QUERY (a JSON command array; '-' or nothing reads standard input) and print the response.

    Example: lensdb query --data ./data '[{"GetStatus": {}}]'
    """
    from lensdb import Database

    text = sys.stdin.read() if query in (None, "-") else query
    inputs = [p.read_bytes() for p in blob_files]
    try:
        db = Database(data, blobs=blobs)
    except Exception as e:
        raise config_error(e) from None
    with db:
        response, out_blobs = db.query(text, inputs)
    click.echo(json.dumps(response, indent=2))
    if save_blobs and out_blobs:
        save_blobs.mkdir(parents=True, exist_ok=True)
        for i, b in enumerate(out_blobs):
            (save_blobs / f"blob-{i}").write_bytes(b)
        click.echo(f"wrote {len(out_blobs)} blob(s) to {save_blobs}", err=True)
    elif out_blobs:
        click.echo(
            f"({len(out_blobs)} blob(s) returned; use --save-blobs DIR to keep them)", err=True
        )
    if not isinstance(response, list):
        sys.exit(1)
