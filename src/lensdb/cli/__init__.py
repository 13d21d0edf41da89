"""The `lensdb` command line. Each subcommand lives in its own module and registers on `main`."""

from __future__ import annotations

import logging

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log debug detail.")
@click.version_option(package_name="lensdb")
def main(verbose: bool) -> None:
    """lensdb: images, regions and labels in one database that speaks ApertureDB's query language."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _register() -> None:
    # Subcommand modules import click objects from here; import them last to avoid cycles.
    import importlib
    import pkgutil

    for mod in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{mod.name}")


_register()
