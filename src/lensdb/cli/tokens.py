"""`lensdb tokens create|revoke|list`: API tokens (adbp_…) for Authenticate {"token"}."""

from __future__ import annotations

import click

from lensdb.cli import main
from lensdb.cli.common import data_option, fail, open_store


@main.group()
def tokens() -> None:
    """Manage API tokens."""


@tokens.command("create")
@data_option
@click.argument("username")
@click.option(
    "--expires-in", type=click.IntRange(min=1), help="Lifetime in seconds (default: no expiry)."
)
def create(data: str, blobs: str | None, username: str, expires_in: int | None) -> None:
    """Create a token for USERNAME and print it (only its hash is kept)."""
    from lensdb.auth import credentials
    from lensdb.auth.store import AuthError

    token = credentials.new_token(credentials.API_PREFIX)
    store = open_store(data, blobs)
    try:
        store.add_token(username, token, expires_in)
    except AuthError as e:
        fail(e)
    finally:
        store.close()
    click.echo(token)


@tokens.command("revoke")
@data_option
@click.argument("token")
@click.option("--user", "username", help="Only look among this user's tokens.")
def revoke(data: str, blobs: str | None, token: str, username: str | None) -> None:
    """Revoke TOKEN (whole, or its first characters as listed); its sessions end."""
    from lensdb.auth.store import AuthError

    store = open_store(data, blobs)
    try:
        store.remove_tokens(username, [token])
    except AuthError as e:
        fail(e)
    finally:
        store.close()
    click.echo("token revoked")


@tokens.command("list")
@data_option
@click.argument("username")
def list_(data: str, blobs: str | None, username: str) -> None:
    """List USERNAME's tokens by their shown prefix."""
    import time

    store = open_store(data, blobs)
    try:
        user = store.user(username)
        if user is None:
            fail(ValueError(f"user '{username}' does not exist"))
            return
        for t in store.tokens_of(user.id):
            if t.expires is None:
                state = "no expiry"
            elif t.expires < time.time():
                state = "expired"
            else:
                state = f"expires in {int(t.expires - time.time())}s"
            click.echo(f"{t.shown}  {state}")
    finally:
        store.close()
