"""`lensdb import` and `lensdb export`: datasets in COCO, YOLO, Pascal VOC and Label Studio JSON."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from lensdb.cli import main, setting
from lensdb.cli.common import config_error, data_option

FORMAT = click.Choice(["coco", "yolo", "voc", "labelstudio"])


def server_options(fn: Callable) -> Callable:
    """--lensdb HOST:PORT and who to be there; without it, --data is opened in-process."""
    opts = [
        click.option(
            "--lensdb",
            "lensdb_addr",
            default=None,
            metavar="HOST:PORT|URL",
            help="Go through a running lensdb server instead of opening --data: its TCP port, "
            "or its HTTP address (http(s)://HOST:PORT).",
        ),
        click.option(
            "--lensdb-user",
            default=setting("user"),
            show_default="admin",
            help="lensdb user. Env: LENSDB_USER.",
        ),  # fmt: skip
        click.option(
            "--lensdb-password",
            default=setting("password"),
            help="Password of that user. Env: LENSDB_PASSWORD.",
        ),  # fmt: skip
        click.option(
            "--lensdb-token",
            default=setting("token"),
            help="API token instead of a password. Env: LENSDB_TOKEN.",
        ),  # fmt: skip
        click.option(
            "--lensdb-tls/--no-lensdb-tls",
            default=True,
            show_default=True,
            help="Talk TLS to the server (lensdb serve does by default).",
        ),  # fmt: skip
        click.option(
            "--lensdb-ca-cert",
            default=setting("ca_cert"),
            metavar="PEM",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="Check the server's certificate against this CA (lensdb's own: DATA/tls/ca.crt). "
            "Env: LENSDB_CA_CERT.",
        ),
        click.option(
            "--lensdb-insecure",
            is_flag=True,
            help="Do not check the server's TLS certificate at all.",
        ),  # fmt: skip
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def _client(data: str, blobs: str | None, kw: dict[str, Any]):  # noqa: ANN202 - a lensdb.client.Client
    if kw["lensdb_addr"]:
        from lensdb.client import connect

        if not kw["lensdb_password"] and not kw["lensdb_token"]:
            raise click.UsageError("give --lensdb-password (or LENSDB_PASSWORD) or --lensdb-token")
        try:
            return connect(
                kw["lensdb_addr"],
                kw["lensdb_user"],
                kw["lensdb_password"] or "",
                kw["lensdb_token"] or "",
                tls=kw["lensdb_tls"],
                ca_cert=str(kw["lensdb_ca_cert"]) if kw["lensdb_ca_cert"] else None,
                insecure=kw["lensdb_insecure"],
                timeout=120,
            )
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--lensdb") from None
    from lensdb import Database
    from lensdb.client import EmbeddedClient

    try:
        return EmbeddedClient(Database(data, blobs=blobs))
    except Exception as e:
        raise config_error(e) from None


@main.command("import")
@click.argument("fmt", metavar="coco|yolo|voc|labelstudio", type=FORMAT)
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@data_option
@server_options
@click.option(
    "--images",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="coco, labelstudio, voc: the folder holding the images (default: next to SOURCE).",
)
@click.option("--dataset", default="", help="Stored as the images' `dataset` property; part of "
              "each image's guid (DATASET/FILE_NAME), so re-importing adds nothing.")  # fmt: skip
@click.option(
    "--as",
    "as_kind",
    type=click.Choice(["auto", "annotations", "predictions"]),
    default="auto",
    show_default=True,
    help="What the regions are: human annotations (LS_annotation entities, as Label Studio "
    "writes them) or model predictions (regions without LS_annotation). auto: regions with a "
    "score (COCO, YOLO confidence, VOC <score>) and Label Studio 'predictions' are predictions, "
    "the rest annotations.",
)
@click.option("--batch", "batch_size", type=click.IntRange(min=1), default=100, show_default=True,
              help="Images per transaction.")  # fmt: skip
@click.option("--dry-run", is_flag=True, help="Read and check everything, write nothing.")
def import_(
    fmt: str,
    source: Path,
    data: str,
    blobs: str | None,
    images: Path | None,
    dataset: str,
    as_kind: str,
    batch_size: int,
    dry_run: bool,
    **kw: Any,
) -> None:
    """Import a dataset: SOURCE is a COCO JSON file, a YOLO folder (with data.yaml), a folder of
    Pascal VOC XML files, or a Label Studio JSON export.

    \b
    Examples:
      lensdb import coco instances_val.json --images val2017/ --dataset coco-val
      lensdb import yolo ./mydata --dataset mydata --lensdb localhost:55555 \\
          --lensdb-ca-cert data/tls/ca.crt
      lensdb import labelstudio export.json --images ls-media/ --dry-run

    What a failed import leaves behind: the whole source (and every image it names) is read
    and checked before anything is written, so a malformed file imports nothing and the error
    names the file and the field or line. Images are then written in transactions of --batch
    images, each all or nothing; if one fails (the server goes away), the batches before it
    stay. Run the same command again: images already there (same guid) are skipped.
    """
    from tqdm import tqdm

    from lensdb.client import DatabaseError, DatabaseUnavailable
    from lensdb.formats import FormatError, read_source
    from lensdb.formats.importer import ImageSizes, ImportSummary, check_images, run_import
    from lensdb.formats.lsjson import results

    sizes = ImageSizes(str(source))
    try:
        parsed = read_source(fmt, source, images, as_kind, sizes)
        image_sizes = check_images(parsed, sizes)
    except FormatError as e:
        raise click.ClickException(f"nothing imported: {e}") from None
    fresh = not kw["lensdb_addr"] and "://" not in data and not Path(data).exists()
    # A dry run into a folder that does not exist yet would otherwise create the database.
    client = None if dry_run and fresh else _client(data, blobs, kw)
    summary = ImportSummary()
    try:
        with tqdm(total=len(parsed.images), unit="img", desc="import", disable=None) as bar:
            run_import(
                client,
                parsed,
                dataset=dataset,
                source=f"import:{fmt}",
                sizes=image_sizes,
                ls_results=results,
                batch_size=batch_size,
                dry_run=dry_run,
                progress=bar.update,
                summary=summary,
            )
    except DatabaseError as e:
        what = "could not be reached" if isinstance(e, DatabaseUnavailable) else "refused a batch"
        kept = (
            f"{summary.stored} image(s) of earlier batches are stored; run the same command "
            "again to continue (images already there are skipped)"
            if summary.stored
            else "nothing was imported"
        )
        raise click.ClickException(f"lensdb {what}: {e} ({kept})") from None
    finally:
        if client is not None:
            client.close()
    if dry_run:
        click.echo("dry run: nothing written; it would add:", err=True)
    for line in summary.lines():
        click.echo(line, err=True)


@main.command("export")
@click.argument("fmt", metavar="coco|yolo|voc|labelstudio", type=FORMAT)
@click.argument("out", type=click.Path(path_type=Path))
@data_option
@server_options
@click.option("--constraints", default=None, metavar="JSON",
              help='FindImage constraints selecting the images, e.g. \'{"dataset": ["==", "val"]}\'.')  # fmt: skip
@click.option(
    "--source",
    "source",
    type=click.Choice(["annotations", "predictions", "both"]),
    default="both",
    show_default=True,
    help="Human annotations (regions with LS_annotation), model predictions (without), or both. "
    "COCO with 'predictions' writes the results list COCO.loadRes takes.",
)
@click.option(
    "--media",
    type=click.Choice(["copy", "link", "none"]),
    default="copy",
    show_default=True,
    help="copy: write the image files; link: refer to LINK_BASE/media/images/<id> (coco and "
    "labelstudio); none: annotations only.",
)
@click.option("--link-base", default="", metavar="URL",
              help="With --media link: lensdb's public HTTP address.")  # fmt: skip
@click.option("--split-by", default=None, metavar="PROPERTY",
              help="One split per value of this image property (e.g. split).")  # fmt: skip
@click.option("--since", default=None, metavar="DATE",
              help="Only images imported, or whose annotations were saved, at or after this "
              "ISO date (their imported_at / LS_updated_at).")  # fmt: skip
def export(
    fmt: str,
    out: Path,
    data: str,
    blobs: str | None,
    constraints: str | None,
    source: str,
    media: str,
    link_base: str,
    split_by: str | None,
    since: str | None,
    **kw: Any,
) -> None:
    """Export images and their regions to OUT (a folder; for coco and labelstudio also a .json file).

    \b
    Examples:
      lensdb export coco out/instances.json --constraints '{"dataset": ["==", "val"]}'
      lensdb export yolo out/yolo --split-by split
      lensdb export coco preds.json --source predictions --media none
      lensdb export labelstudio tasks.json --media link --link-base http://host:55556
    """
    from lensdb.client import DatabaseError
    from lensdb.formats.exporter import ExportOptions
    from lensdb.formats.exporter import export as run_export
    from lensdb.formats.model import ANNOTATIONS, PREDICTIONS

    try:
        where = json.loads(constraints) if constraints else None
    except json.JSONDecodeError as e:
        raise click.BadParameter(f"not JSON: {e}", param_hint="--constraints") from None
    if media == "link" and not link_base:
        raise click.UsageError("--media link needs --link-base URL")
    kinds = {"annotations": {ANNOTATIONS}, "predictions": {PREDICTIONS}}.get(
        source, {ANNOTATIONS, PREDICTIONS}
    )
    opts = ExportOptions(
        constraints=where,
        kinds=frozenset(kinds),
        media=media,
        link_base=link_base,
        split_by=split_by,
        since=since,
    )
    client = _client(data, blobs, kw)
    try:
        summary = run_export(fmt, client, out, opts)
    except (DatabaseError, ValueError) as e:
        raise click.ClickException(str(e)) from None
    finally:
        client.close()
    for line in summary.lines():
        click.echo(line, err=True)
