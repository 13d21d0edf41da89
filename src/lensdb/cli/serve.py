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
    default=setting("max_message_mb"),
    show_default="256",
    type=click.IntRange(min=1, max=4095),
    help="Largest TCP message or HTTP request body, blobs included; a larger one gets an error "
    "(HTTP 413) and the connection is closed. Env: LENSDB_MAX_MESSAGE_MB.",
)
@click.option(
    "--max-query-mb",
    default=setting("max_query_mb"),
    show_default="16",
    type=click.IntRange(min=1, max=4095),
    help="Largest JSON text of one query (blobs not counted). Env: LENSDB_MAX_QUERY_MB.",
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
    default=setting("vdms"),
    show_default="off",
    help="Serve clients of the VDMS protocol, which has no authentication: needs "
    "--vdms-client-ca or --vdms-unauthenticated. Env: LENSDB_VDMS=1.",
)
@click.option(
    "--vdms-client-ca",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Require VDMS clients to use TLS with a certificate signed by this CA.",
)
@click.option(
    "--vdms-unauthenticated",
    is_flag=True,
    default=setting("vdms_unauthenticated"),
    help="Accept VDMS clients without any credentials, read-only unless --vdms-writes: anyone "
    "who reaches the port can read every object. Env: LENSDB_VDMS_UNAUTHENTICATED=1.",
)
@click.option(
    "--vdms-writes",
    is_flag=True,
    default=setting("vdms_writes"),
    help="With --vdms-unauthenticated: let those clients add, change and delete too. "
    "Env: LENSDB_VDMS_WRITES=1.",
)
@click.option(
    "--idle-timeout",
    default=setting("idle_timeout"),
    show_default="600",
    type=click.FloatRange(min=0),
    help="Close TCP connections idle this many seconds between queries (0: never); SDK clients "
    "reconnect by themselves. Env: LENSDB_IDLE_TIMEOUT.",
)
@click.option(
    "--handshake-timeout",
    default=setting("handshake_timeout"),
    show_default="10",
    type=click.FloatRange(min=0.1),
    help="Seconds a TCP client has for its hello and TLS handshake, and an HTTP client for its "
    "request headers. Env: LENSDB_HANDSHAKE_TIMEOUT.",
)
@click.option(
    "--frame-timeout",
    default=setting("frame_timeout"),
    show_default="30",
    type=click.FloatRange(min=0.1),
    help="Seconds a begun TCP message or HTTP request body may take, plus one per 16 KiB of "
    "it: a client sending one byte a second is cut off. Env: LENSDB_FRAME_TIMEOUT.",
)
@click.option(
    "--max-connections",
    default=setting("max_connections"),
    show_default="4096",
    type=click.IntRange(min=1),
    help="Open TCP connections (and HTTP requests in progress) at once; more are refused. "
    "Env: LENSDB_MAX_CONNECTIONS.",
)
@click.option(
    "--login-failures-per-minute",
    default=setting("login_failures_per_minute"),
    show_default="10",
    type=click.FloatRange(min=0),
    help="Failed logins allowed per minute per client address and per user, after a burst of "
    "LENSDB_LOGIN_BURST (10); more are refused without checking (0: no limit). "
    "Env: LENSDB_LOGIN_FAILURES_PER_MINUTE.",
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
@click.option(
    "--media-redirect",
    is_flag=True,
    help="Media gateway, with --blobs s3://...: answer a media request with a redirect (307) "
    "to a presigned URL of the object store when the blob is a whole object (a query that "
    "added one blob), so the store serves the bytes; blobs sharing an object are served as "
    "usually. Browsers must be able to reach the store's endpoint. Env: LENSDB_MEDIA_REDIRECT=1.",
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
    max_query_mb: int,
    workers: int,
    allow_vdms: bool,
    vdms_client_ca: Path | None,
    vdms_unauthenticated: bool,
    vdms_writes: bool,
    idle_timeout: float,
    handshake_timeout: float,
    frame_timeout: float,
    max_connections: int,
    login_failures_per_minute: float,
    cors_origins: tuple[str, ...],
    dev: bool,
    media_redirect: bool,
) -> None:
    """Serve the database in DATA over ApertureDB's TCP protocol and REST API.

    The first start creates user 'admin' with the password in LENSDB_ADMIN_PASSWORD,
    or prints a generated one once.
    """
    from lensdb.server.runner import ServeConfig, run

    if bool(tls_cert) != bool(tls_key):
        raise click.UsageError("--tls-cert and --tls-key go together")
    origins = tuple(o.strip().rstrip("/") for o in cors_origins)
    if "*" in origins or "*" in settings().cors_origins:
        raise click.UsageError(
            "--cors-origin '*' would let every web page read your media: name the origins, "
            "or use --dev on a development machine"
        )
    if allow_vdms and not (vdms_client_ca or vdms_unauthenticated):
        raise click.UsageError(
            "--vdms serves a protocol without authentication. Add --vdms-client-ca CA.pem to "
            "require client certificates, or --vdms-unauthenticated to accept anyone who can "
            "reach the port (read-only unless --vdms-writes)"
        )
    if vdms_writes and not vdms_unauthenticated:
        raise click.UsageError("--vdms-writes applies to --vdms-unauthenticated clients")
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
        cors_origins=origins or None,
        dev=dev or None,
        media_redirect=media_redirect or None,
        idle_timeout=idle_timeout,
        handshake_timeout=handshake_timeout,
        frame_timeout=frame_timeout,
        max_connections=max_connections,
        login_failures_per_minute=login_failures_per_minute,
        max_message_mb=max_message_mb,
        max_query_mb=max_query_mb,
        vdms=allow_vdms,
        vdms_unauthenticated=vdms_unauthenticated,
        vdms_writes=vdms_writes,
    )
    if given.media_redirect and not (pg and (blobs or "").startswith("s3://")):
        raise click.UsageError(
            "--media-redirect needs blobs in object storage (--data postgresql://... "
            "--blobs s3://BUCKET/PREFIX): other blobs have no URL but lensdb's own"
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
