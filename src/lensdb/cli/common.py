"""What several subcommands share: the --data option, HOST:PORT values, the auth store, failing."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, NoReturn

import click

from lensdb.cli import setting, settings

if TYPE_CHECKING:
    from lensdb.auth.store import AuthStore


def data_option(f):  # noqa: ANN001, ANN201 - a click decorator: --data and --blobs
    f = click.option(
        "--blobs",
        default=setting("blobs"),
        metavar="URL",
        help="With a postgresql:// --data: where blobs go, s3://BUCKET/PREFIX (endpoint and "
        "credentials from the AWS_* variables) or file:///shared/path. Env: LENSDB_BLOBS.",
    )(f)
    return click.option(
        "--data",
        default=setting("data"),
        show_default="./data",
        metavar="FOLDER|URL",
        help="Database folder (embedded), or postgresql://USER:PASSWORD@HOST/DB. Env: LENSDB_DATA.",
    )(f)


def config_error(e: Exception) -> click.ClickException:
    """A start-up error (wrong URL, credentials, bucket) as one line for the shell."""
    return click.ClickException(str(e))


def split_hostport(value: str) -> tuple[str, int]:
    """'HOST:PORT' as (host, port) (lensdb.client's parser); a click usage error otherwise."""
    from lensdb.client.tcp import split_hostport as parse

    try:
        return parse(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def open_store(data: str, blobs: str | None = None) -> AuthStore:
    """Open the auth store, creating 'admin' on first use as `lensdb serve` would."""
    from lensdb.auth.store import open_auth_store  # imported late: a fast CLI start
    from lensdb.store.factory import check_location

    try:
        check_location(data, blobs, need_blobs=False)
        store = open_auth_store(data)
    except Exception as e:
        raise config_error(e) from None
    generated = store.bootstrap(settings().admin_password)
    if generated:
        click.echo(
            f"Created user 'admin' with password: {generated} (shown only this once)", err=True
        )
    return store


def fail(e: Exception) -> NoReturn:
    """Say what went wrong on one line and exit with 1."""
    click.echo(f"error: {e}", err=True)
    sys.exit(1)
