"""What several subcommands share: the --data option, HOST:PORT values, the auth store, failing."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from lensdb.cli import setting, settings

if TYPE_CHECKING:
    from lensdb.auth.store import AuthStore

data_option = click.option(
    "--data", default=setting("data"), show_default="./data",
    type=click.Path(file_okay=False, path_type=Path), help="Database folder. Env: LENSDB_DATA.",
)


def split_hostport(value: str) -> tuple[str, int]:
    """'HOST:PORT' as (host, port) (lensdb.client's parser); a click usage error otherwise."""
    from lensdb.client.tcp import split_hostport as parse

    try:
        return parse(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def open_store(data: Path) -> AuthStore:
    """Open the auth store, creating 'admin' on first use as `lensdb serve` would."""
    from lensdb.auth.store import AuthStore  # imported late: a fast CLI start

    store = AuthStore(data)
    generated = store.bootstrap(settings().admin_password)
    if generated:
        click.echo(f"Created user 'admin' with password: {generated} (shown only this once)", err=True)
    return store


def fail(e: Exception) -> NoReturn:
    """Say what went wrong on one line and exit with 1."""
    click.echo(f"error: {e}", err=True)
    sys.exit(1)
