"""`lensdb check`: do the blob rows and the pack files on disk agree?"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from lensdb.cli import main
from lensdb.cli.common import config_error, data_option


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


@main.command()
@data_option
@click.option(
    "--repair",
    is_flag=True,
    help="Remove pack files that no row uses (they can only come from outside lensdb: "
    "a copied or partly restored folder).",
)
def check(data: str, blobs: str | None, repair: bool) -> None:
    """Check that every blob row's bytes are stored and every pack is used.

    Safe while `lensdb serve` runs on the same data. Exits with 1 when rows point to bytes
    that are missing.
    """
    from lensdb.store.factory import is_postgres_url, open_store

    if not is_postgres_url(data) and not (Path(data) / "lensdb.sqlite3").exists():
        raise click.UsageError(f"no lensdb database in {data} (give the folder with --data)")
    try:
        store = open_store(data, blobs)
    except Exception as e:
        raise config_error(e) from None
    where = getattr(getattr(store, "blobs", None), "describe", lambda: f"{data}/blobs")()
    try:
        report = store.check(repair=repair)
    finally:
        store.close()
    click.echo(
        f"{report.rows:,} blob row(s) in {report.packs:,} pack file(s): {_mb(report.live_bytes)} "
        f"used, {_mb(report.pack_bytes)} on disk"
    )
    if report.orphans:
        verb = "removed" if repair else "found (run with --repair to remove them)"
        click.echo(f"{len(report.orphans):,} pack file(s) that no row uses {verb}")
    if report.missing:
        click.echo(
            f"error: {len(report.missing):,} row(s) point to bytes that are not on disk, e.g. "
            f"{report.missing[0]}; restore {where} from a backup",
            err=True,
        )
        sys.exit(1)
    click.echo("ok: every blob row's bytes are on disk")
