"""Run TCP and HTTP in one process around one Database, and stop cleanly on signals.

Shutdown order: stop accepting, let queries in progress finish and answer, then close the
thread pool, the database and the auth store. A query is one engine transaction, so a
stop never leaves one half-applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn

from lensdb.auth.service import DEFAULT_REFRESH_TTL, DEFAULT_SESSION_TTL, AuthService
from lensdb.auth.store import open_auth_store
from lensdb.auth.throttle import LoginThrottle, ThrottleLimits
from lensdb.server import tls, workers
from lensdb.server.context import ServerContext
from lensdb.server.dispatch import QueryHandler
from lensdb.server.http import create_app
from lensdb.server.httplimits import guarded_protocol
from lensdb.server.tcp import TcpOptions, TcpServer
from lensdb.settings import Settings
from lensdb.store.factory import redact

log = logging.getLogger("lensdb.server")

ADMIN_PASSWORD_ENV = "LENSDB_ADMIN_PASSWORD"
# Threads hashing login passwords (argon2: 64 MiB and ~0.1 s each), apart from the query threads.
LOGIN_THREADS = 2
# Seconds between two passes that bring the loaded descriptor indexes up to the stored rows (the
# issue asks for another server's changes "within a second"; a pass that finds nothing to do
# reads the sets' rows only, one indexed query).
VECTOR_SYNC_EVERY = 0.5


@dataclass
class ServeConfig:
    data_dir: Path  # the data folder; with `data` a PostgreSQL URL, this server's local state
    data: str | None = None  # a postgresql:// URL (scale-out); None: data_dir is the database
    blobs: str | None = None  # with `data`: s3://BUCKET/PREFIX or file:///shared/path
    host: str = "127.0.0.1"
    port: int = 55555
    http_port: int | None = 55556
    tls_cert: Path | None = None
    tls_key: Path | None = None
    require_tls: bool = False
    http_tls: bool = False
    session_ttl: int = DEFAULT_SESSION_TTL
    refresh_ttl: int = DEFAULT_REFRESH_TTL
    max_message_mb: int = 256
    workers: int = 32  # threads running queries (`--threads`)
    # processes answering the HTTP port (`--workers`): see server/workers.py
    http_processes: int = 1
    allow_vdms: bool = False
    vdms_client_ca: Path | None = None
    idle_timeout: float | None = 600.0
    shutdown_grace: float = 30.0
    # What came from outside (environment, options): the admin password, the gateway's settings.
    settings: Settings = field(default_factory=Settings)


class _EmbeddedUvicorn(uvicorn.Server):
    """uvicorn without its own signal handling: the runner owns SIGINT/SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def run(config: ServeConfig) -> None:
    """Serve until SIGINT/SIGTERM (blocking)."""
    try:  # libuv's event loop where it installs: a third more HTTP requests per second here
        from uvloop import new_event_loop
    except ImportError:
        new_event_loop = None
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(serve(config))


def open_context(config: ServeConfig) -> ServerContext:
    """The database, the users and the thread pool one server process shares between its
    transports (and between the HTTP worker processes, each of which opens its own)."""
    from lensdb import Database

    _check_vdms(config)
    data_dir = Path(config.data_dir)
    location = config.data or data_dir
    store = open_auth_store(location)
    generated = store.bootstrap(config.settings.admin_password)
    if generated:
        # Shown once; only its hash is stored.
        print(
            f"Created user 'admin' with password: {generated}\n"
            f"(shown only this once; set {ADMIN_PASSWORD_ENV} to choose it)",
            file=sys.stderr,
            flush=True,
        )
    settings = config.settings
    limits = ThrottleLimits(settings.login_burst, settings.login_failures_per_minute)
    auth = AuthService(store, config.session_ttl, config.refresh_ttl, LoginThrottle(limits))
    db = Database(location, blobs=config.blobs)
    if config.data:  # every server on one database signs media links and webhooks alike
        settings = settings.with_options(
            signing_secret=store.shared_secret("gateway", secrets.token_hex(32)),
            webhook_secret=settings.webhook_secret
            or store.shared_secret("webhook", secrets.token_hex(32)),
        )
    # Descriptor indexes load in the background, so the first searches need not wait for them.
    threading.Thread(target=_load_vectors, args=(db,), name="lensdb-vectors", daemon=True).start()
    executor = ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="lensdb-query")
    login_executor = ThreadPoolExecutor(
        max_workers=LOGIN_THREADS, thread_name_prefix="lensdb-login"
    )
    max_bytes = config.max_message_mb * 2**20
    handler = QueryHandler(db, auth, login_executor, settings.max_query_mb * 2**20)
    return ServerContext(db, auth, handler, executor, data_dir, max_bytes, settings)


def http_server(
    config: ServeConfig, context: ServerContext, cert: Path, key: Path
) -> uvicorn.Server:
    return _EmbeddedUvicorn(
        uvicorn.Config(
            create_app(context),
            host=config.host,
            port=config.http_port or 0,
            ssl_certfile=str(cert) if config.http_tls else None,
            ssl_keyfile=str(key) if config.http_tls else None,
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=config.shutdown_grace,
            http=guarded_protocol(context.settings.handshake_timeout),
            limit_concurrency=context.settings.max_connections,
        )
    )


async def serve(config: ServeConfig, ready: Callable[[ServerContext], None] | None = None) -> None:
    data_dir = Path(config.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    cert, key = _certificate(config, data_dir)
    tls_ctx = tls.server_context(cert, key)
    vdms_ctx = (
        tls.server_context(cert, key, config.vdms_client_ca) if config.vdms_client_ca else tls_ctx
    )
    context = open_context(config)
    db, store, executor, handler = context.db, context.auth.store, context.executor, context.handler
    settings, login_executor = context.settings, handler.login_executor
    max_bytes = context.max_message_bytes

    tcp = TcpServer(
        handler,
        executor,
        TcpOptions(
            host=config.host,
            port=config.port,
            max_message_bytes=max_bytes,
            require_tls=config.require_tls,
            allow_vdms=config.allow_vdms,
            vdms_unauthenticated=settings.vdms_unauthenticated,
            vdms_writes=settings.vdms_writes,
            vdms_certified=config.vdms_client_ca is not None,
            handshake_timeout=settings.handshake_timeout,
            idle_timeout=config.idle_timeout,
            frame_timeout=settings.frame_timeout,
            max_connections=settings.max_connections,
        ),
        tls_context=tls_ctx,
        vdms_tls_context=vdms_ctx,
    )
    uv: uvicorn.Server | None = None
    uv_task: asyncio.Task | None = None
    children: workers.Children | None = None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        for host, port in await tcp.start():
            log.info(
                "TCP (ApertureDB protocol, TLS %s; VDMS %s) listening on %s:%d",
                "required" if config.require_tls else "optional",
                _vdms_mode(config) if config.allow_vdms else "refused",
                host,
                port,
            )
        if config.allow_vdms:
            log.warning(
                "VDMS clients are served (%s): the VDMS protocol has no login",
                _vdms_mode(config),
            )
        if config.http_port is not None:
            uv = http_server(config, context, cert, key)
            sockets = None
            if config.http_processes > 1:
                sock = workers.listen(config.host, config.http_port)
                sockets = [sock]
                children = workers.start(config, sock, config.http_processes - 1)
            uv_task = asyncio.create_task(uv.serve(sockets=sockets))
            while not uv.started and not uv_task.done():
                await asyncio.sleep(0.02)
            if uv_task.done():
                raise RuntimeError(
                    f"the HTTP server could not start on {config.host}:{config.http_port}"
                )
            log.info(
                "HTTP%s (REST /api/, /openapi.json) listening on %s://%s:%d%s",
                "S" if config.http_tls else "",
                "https" if config.http_tls else "http",
                config.host,
                config.http_port,
                f" ({config.http_processes} processes)" if config.http_processes > 1 else "",
            )
        log.info(
            "TLS certificate %s; lensdb ready (data in %s)",
            cert,
            redact(config.data) if config.data else data_dir,
        )
        if ready is not None:
            ready(context)
        waiters = [asyncio.create_task(stop.wait())]
        if uv_task is not None:
            waiters.append(uv_task)
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        log.info("shutting down: finishing queries in progress")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        if uv is not None:
            uv.should_exit = True
        if children is not None:
            children.stop()
        await tcp.close(config.shutdown_grace)
        if uv_task is not None:
            with contextlib.suppress(BaseException):
                await uv_task
        await loop.run_in_executor(None, executor.shutdown, True)
        if login_executor is not None:
            login_executor.shutdown(wait=False, cancel_futures=True)
        db.close()
        store.close()
        log.info("lensdb stopped")


def _check_vdms(config: ServeConfig) -> None:
    """VDMS has no login: serve it only with client certificates or the risk named."""
    s = config.settings
    if config.allow_vdms and config.vdms_client_ca is None and not s.vdms_unauthenticated:
        raise ValueError(
            "VDMS clients need --vdms-client-ca (client certificates) or --vdms-unauthenticated"
        )
    if s.vdms_writes and not s.vdms_unauthenticated:
        raise ValueError("--vdms-writes applies to --vdms-unauthenticated clients")


def _vdms_mode(config: ServeConfig) -> str:
    s = config.settings
    modes = []
    if config.vdms_client_ca is not None:
        modes.append(f"TLS with client certificates from {config.vdms_client_ca}: read-write")
    if s.vdms_unauthenticated:
        modes.append(
            "without credentials: " + ("READ-WRITE for anyone" if s.vdms_writes else "read-only")
        )
    return "; ".join(modes)


def _load_vectors(db) -> None:  # noqa: ANN001 - the engine's Database, imported lazily
    """Load every descriptor index, then keep the loaded ones current every VECTOR_SYNC_EVERY
    seconds (Database.sync_vector_indexes): what another server or process changed reaches
    this one's indexes within that time even when no search asks, and the index of a set
    deleted elsewhere is unloaded, its memory freed."""
    try:
        n = db.load_vector_indexes()
        if n:
            log.info("descriptor indexes loaded: %d set(s)", n)
    except Exception:  # derived data: a search loads what this could not
        log.exception("loading the descriptor indexes failed")
    while True:
        time.sleep(VECTOR_SYNC_EVERY)
        if db.closed:
            return
        try:
            caught_up, unloaded = db.sync_vector_indexes()
        except Exception as e:  # the next search catches up on its own; try again later
            if not db.closed:
                log.warning("keeping the descriptor indexes current failed: %s", e)
            continue
        if caught_up:
            log.debug("descriptor indexes caught up: %d set(s)", caught_up)
        for set_id in unloaded:
            log.info("descriptor index of set %d unloaded: the set was deleted", set_id)


def _certificate(config: ServeConfig, data_dir: Path) -> tuple[Path, Path]:
    if config.tls_cert or config.tls_key:
        if not (config.tls_cert and config.tls_key):
            raise ValueError("--tls-cert and --tls-key go together")
        return Path(config.tls_cert), Path(config.tls_key)
    extra = () if config.host in ("127.0.0.1", "localhost", "0.0.0.0", "::") else (config.host,)
    return tls.ensure_certificate(data_dir, extra)
