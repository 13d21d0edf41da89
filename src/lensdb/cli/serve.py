"""`lensdb serve`: the ApertureDB-compatible TCP server and REST API in one process."""

from __future__ import annotations

from pathlib import Path

import click

from lensdb.cli import main, setting, settings
from lensdb.cli.common import config_error, data_option


@main.command()
@data_option
@click.option(
    "--state",
    "state_dir",
    default=setting("server_state"),
    show_default="./lensdb-state",
    type=click.Path(file_okay=False, path_type=Path),
    help="With a postgresql:// --data: this server's local folder (its generated TLS "
    "certificate). Everything users see is in PostgreSQL. Env: LENSDB_STATE.",
)
@click.option(
    "--host",
    default=setting("host"),
    show_default="127.0.0.1",
    help="Address to listen on. Env: LENSDB_HOST.",
)
@click.option(
    "--port",
    default=setting("port"),
    show_default="55555",
    type=int,
    help="TCP port for ApertureDB and VDMS clients. Env: LENSDB_PORT.",
)
@click.option(
    "--http-port",
    default=setting("http_port"),
    show_default="55556",
    type=int,
    help="HTTP port for the REST API (/api/), media and the /browse page; 0 disables it. "
    "Env: LENSDB_HTTP_PORT.",
)
@click.option(
    "--tls-cert",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="PEM certificate (chain); default: generated into DATA/tls/.",
)
@click.option(
    "--tls-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="PEM private key for --tls-cert.",
)
@click.option("--require-tls", is_flag=True, help="Refuse plain-TCP clients (ApertureDB and VDMS).")
@click.option(
    "--http-tls", is_flag=True, help="Serve HTTPS on the HTTP port with the same certificate."
)
@click.option(
    "--session-ttl",
    default=3600,
    show_default=True,
    type=click.IntRange(min=1),
    help="Session token lifetime, seconds.",
)
@click.option(
    "--refresh-ttl",
    default=86400,
    show_default=True,
    type=click.IntRange(min=1),
    help="Refresh token lifetime, seconds.",
)
@click.option(
    "--max-message-mb",
    default=256,
    show_default=True,
    type=click.IntRange(min=1, max=4095),
    help="Largest message accepted; a larger frame gets an error and the connection is closed.",
)
@click.option(
    "--threads",
    default=32,
    show_default=True,
    type=click.IntRange(min=1),
    help="Threads running queries, per process.",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(min=1, max=64),
    help="Processes answering the HTTP port (REST API and media gateway); about one per core "
    "serves the most images a second. The TCP port stays in the first process.",
)
@click.option(
    "--vdms/--no-vdms",
    "allow_vdms",
    default=True,
    show_default=True,
    help="Serve clients of the VDMS protocol (which has no authentication).",
)
@click.option(
    "--vdms-client-ca",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Require VDMS TLS clients to present a certificate signed by this CA.",
)
@click.option(
    "--idle-timeout",
    default=600.0,
    show_default=True,
    type=float,
    help="Close TCP connections idle this many seconds (0: never); SDK clients reconnect by themselves.",
)
@click.option(
    "--cors-origin",
    "cors_origins",
    multiple=True,
    metavar="ORIGIN",
    help="Media gateway: a browser origin allowed to load media, e.g. http://localhost:8080 "
    "(repeatable; none by default). Env: LENSDB_CORS_ORIGINS (comma-separated).",
)
@click.option(
    "--dev",
    is_flag=True,
    help="Development mode: the media gateway allows every origin (CORS *) and the /browse "
    "page opens without a login. Env: LENSDB_DEV=1.",
)
def serve(
    data: str,
    blobs: str | None,
    state_dir: Path,
    host: str,
    port: int,
    http_port: int,
    tls_cert: Path | None,
    tls_key: Path | None,
    require_tls: bool,
    http_tls: bool,
    session_ttl: int,
    refresh_ttl: int,
    max_message_mb: int,
    threads: int,
    workers: int,
    allow_vdms: bool,
    vdms_client_ca: Path | None,
    idle_timeout: float,
    cors_origins: tuple[str, ...],
    dev: bool,
) -> None:
    """Serve the database in DATA over ApertureDB's TCP protocol and REST API.

    The first start creates user 'admin' with the password in LENSDB_ADMIN_PASSWORD,
    or prints a generated one once.
    """
    from lensdb.server.runner import ServeConfig, run

    if bool(tls_cert) != bool(tls_key):
        raise click.UsageError("--tls-cert and --tls-key go together")
    from lensdb.store.factory import ConfigError, check_location, is_postgres_url

    try:
        check_location(data, blobs)
    except Exception as e:
        raise config_error(e) from None
    pg = is_postgres_url(data)
    given = settings().with_options(
        data=data,
        blobs=blobs,
        host=host,
        port=port,
        http_port=http_port,
        cors_origins=tuple(o.strip().rstrip("/") for o in cors_origins) or None,
        dev=dev or None,
    )
    config = ServeConfig(
        data_dir=state_dir if pg else Path(data),
        data=data if pg else None,
        blobs=blobs,
        host=host,
        port=port,
        http_port=http_port or None,
        tls_cert=tls_cert,
        tls_key=tls_key,
        require_tls=require_tls,
        http_tls=http_tls,
        session_ttl=session_ttl,
        refresh_ttl=refresh_ttl,
        max_message_mb=max_message_mb,
        workers=threads,
        http_processes=workers,
        allow_vdms=allow_vdms,
        vdms_client_ca=vdms_client_ca,
        idle_timeout=idle_timeout or None,
        settings=given,
    )
    try:
        run(config)
    except ConfigError as e:  # a wrong bucket or credentials found while opening the store
        raise config_error(e) from None
