"""`lensdb copy SRC DST`: move a dataset between backends (a folder, PostgreSQL + S3)."""

from __future__ import annotations

import sys

import click

from lensdb.cli import main
from lensdb.cli.common import config_error


@main.command("copy")
@click.argument("src", metavar="SRC")
@click.argument("dst", metavar="DST")
@click.option(
    "--src-blobs", metavar="URL", help="Blobs of a postgresql:// SRC (s3://... or file:///...)."
)
@click.option(
    "--blobs",
    "dst_blobs",
    metavar="URL",
    help="Blobs of a postgresql:// DST (s3://BUCKET/PREFIX or file:///path).",
)
@click.option(
    "--batch",
    default=500,
    show_default=True,
    type=click.IntRange(min=1),
    help="Objects per destination transaction.",
)
def copy(src: str, dst: str, src_blobs: str | None, dst_blobs: str | None, batch: int) -> None:
    """Copy every object, connection, blob and index from SRC to DST, keeping ids.

    SRC and DST are data folders or postgresql:// URLs. Run it again after an interruption
    and it resumes; at the end it compares counts per class and every blob's SHA-256 (exit 1
    on a difference). SRC should not be written to meanwhile.

    Example: lensdb copy ./data postgresql://lensdb@db/lensdb --blobs s3://bucket/lensdb
    """
    from tqdm import tqdm

    from lensdb.store.copy import CopyError, copy_dataset
    from lensdb.store.factory import open_store

    try:
        source = open_store(src, src_blobs)
        target = open_store(dst, dst_blobs)
    except Exception as e:
        raise config_error(e) from None
    bars: dict[str, tqdm] = {}

    def progress(phase: str, done: int, total: int) -> None:
        bar = bars.get(phase)
        if bar is None:
            bar = bars[phase] = tqdm(
                total=total, desc=phase, unit=" rows", file=sys.stderr, initial=0
            )
        bar.total = max(total, done)
        bar.n = done
        bar.refresh()

    try:
        report = copy_dataset(source, target, batch=batch, progress=progress)
    except CopyError as e:
        raise click.ClickException(str(e)) from None
    finally:
        for bar in bars.values():
            bar.close()
        source.close()
        target.close()
    resumed = report.resumed_at
    if any(resumed):
        click.echo(f"resumed after {resumed[0]:,} objects and {resumed[1]:,} connections")
    click.echo(f"copied {report.objects:,} objects and {report.connections:,} connections")
    if not report.ok:
        for m in report.mismatches[:20]:
            click.echo(f"mismatch: {m}", err=True)
        sys.exit(1)
    click.echo("verified: counts per class and every blob's checksum match")
