"""The `lensdb` command line. Each subcommand lives in its own module and registers on `main`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from lensdb.settings import Settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log debug detail.")
@click.version_option(package_name="lensdb")
def main(verbose: bool) -> None:
    """lensdb: images, regions and labels in one database that speaks ApertureDB's query language."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def settings() -> Settings:
    """This run's settings, read from the environment once; options are laid over them."""
    from lensdb.settings import Settings

    root = click.get_current_context().find_root()
    if not isinstance(root.obj, Settings):
        try:
            root.obj = Settings.from_env()
        except ValueError as exc:
            raise click.UsageError(f"bad environment variable {exc}") from None
    return root.obj


def setting(name: str) -> Callable[[], Any]:
    """A click `default=` taken from the settings (hence from the environment), read when used."""
    return lambda: getattr(settings(), name)


def _register() -> None:
    # Subcommand modules import click objects from here; import them last to avoid cycles.
    import importlib
    import pkgutil

    for mod in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{mod.name}")


_register()
