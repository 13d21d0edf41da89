"""`lensdb users add|list|remove|passwd`: manage accounts in DATA/auth.sqlite3.

Works while the server runs: it notices the change on the next query, and changing or
removing a user ends that user's sessions.
"""

from __future__ import annotations

import click

from lensdb.cli import main
from lensdb.cli.common import data_option, fail, open_store


@main.group()
def users() -> None:
    """Manage users (roles: see CreateRole/UpdateRole in the query language)."""


@users.command("add")
@data_option
@click.argument("username")
@click.option("--password", help="Password (prompted for when omitted).")
@click.option(
    "--role", "roles", multiple=True, help="Role to grant; repeat for several (e.g. --role admin)."
)
@click.option("--email", help="Email address.")
def add(
    data: str,
    blobs: str | None,
    username: str,
    password: str | None,
    roles: tuple[str, ...],
    email: str | None,
) -> None:
    """Create USERNAME."""
    from lensdb.auth.store import AuthError

    if password is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    store = open_store(data, blobs)
    try:
        store.create_user(username, password, roles, email)
    except AuthError as e:
        fail(e)
    finally:
        store.close()
    click.echo(f"created user '{username}'" + (f" with roles {', '.join(roles)}" if roles else ""))


@users.command("list")
@data_option
def list_(data: str, blobs: str | None) -> None:
    """List users, their roles and how many API tokens they hold."""
    store = open_store(data, blobs)
    try:
        rows = [
            (u.username, ",".join(u.roles) or "-", u.email or "-", len(store.tokens_of(u.id)))
            for u in store.users()
        ]
    finally:
        store.close()
    width = max([len(r[0]) for r in rows] + [8])
    click.echo(f"{'USERNAME':<{width}}  ROLES  EMAIL  TOKENS")
    for name, roles, email, ntok in rows:
        click.echo(f"{name:<{width}}  {roles}  {email}  {ntok}")


@users.command("remove")
@data_option
@click.argument("username")
def remove(data: str, blobs: str | None, username: str) -> None:
    """Remove USERNAME, their tokens and sessions."""
    from lensdb.auth.store import AuthError

    store = open_store(data, blobs)
    try:
        store.remove_user(username)
    except AuthError as e:
        fail(e)
    finally:
        store.close()
    click.echo(f"removed user '{username}'")


@users.command("passwd")
@data_option
@click.argument("username")
@click.option("--password", help="New password (prompted for when omitted).")
def passwd(data: str, blobs: str | None, username: str, password: str | None) -> None:
    """Set USERNAME's password; their open sessions end."""
    from lensdb.auth.store import AuthError

    if password is None:
        password = click.prompt("New password", hide_input=True, confirmation_prompt=True)
    if not password:
        fail(ValueError("the password must not be empty"))
    store = open_store(data, blobs)
    try:
        store.update_user(username, password=password)
    except AuthError as e:
        fail(e)
    finally:
        store.close()
    click.echo(f"password changed for '{username}'")
