"""lensdb's settings: one frozen object, read from the environment once and passed down.

`Settings.from_env()` is the only place lensdb reads its `LENSDB_*` variables (and the two
Label Studio ones the connector honours). The `lensdb` command loads it once per run and lays
the command-line options over it (`with_options`); servers, the gateway and the connector get
the object, or the fields they need, as arguments. Nothing writes to `os.environ` to pass a
setting on. The Label Studio plugin, which lives in Label Studio's Django process, reads the
same object once in its Django settings module.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any


def _bool(value: str) -> bool:
    low = value.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("", "0", "false", "no", "off"):
        return False
    raise ValueError("use 1/0, true/false, yes/no or on/off")


def _origins(value: str) -> tuple[str, ...]:
    return tuple(o.strip().rstrip("/") for o in value.split(",") if o.strip())


def _default_state_dir(environ: Mapping[str, str]) -> Path:
    base = environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return Path(base) / "lensdb"


@dataclass(frozen=True)
class Settings:
    """Everything lensdb can be told from outside, with its default.

    Each field names its environment variable in `ENV`; a command-line option of the same
    name wins over it.
    """

    # The database (server side)
    data: str = "data"  # database folder, or a postgresql:// URL (scale-out)
    blobs: str | None = None  # where blob bytes go; None: DATA/blobs (the embedded default)
    server_state: Path = Path("lensdb-state")  # a server's local folder when DATA is a URL
    signing_secret: str | None = None  # media link key shared by servers (kept in PostgreSQL)
    admin_password: str | None = None  # password of 'admin' when it is created; else generated
    # `lensdb serve`
    host: str = "127.0.0.1"
    port: int = 55555  # TCP: ApertureDB and VDMS clients
    http_port: int = 55556  # HTTP: /api/, /media, /labelstudio
    # Limits against hostile or broken clients (`lensdb serve` options of the same names)
    idle_timeout: float = 600.0  # close a TCP connection idle this long between queries (0: never)
    handshake_timeout: float = 10.0  # hello + TLS handshake (TCP), request headers (HTTP)
    frame_timeout: float = 30.0  # a message or request body, once begun, must keep arriving
    max_connections: int = 4096  # open TCP connections (and HTTP requests) at once
    max_message_mb: int = 256  # largest TCP message or HTTP request body, blobs included
    max_query_mb: int = 16  # largest JSON text of one query
    login_failures_per_minute: float = 10.0  # per address and per user, after a burst (0: off)
    login_burst: int = 10  # failed logins allowed at once before the rate applies
    # VDMS clients (the VDMS protocol has no authentication): off unless asked for
    vdms: bool = False
    vdms_unauthenticated: bool = False  # the operator accepts VDMS clients without certificates
    vdms_writes: bool = False  # unauthenticated VDMS clients may also change data
    # The media gateway on the HTTP port
    cors_origins: tuple[str, ...] = ()  # browser origins allowed to load media
    dev: bool = False  # every origin allowed (CORS *), /browse without login; a warning in the log
    public_url: str | None = None  # base URL put in signed links; default: the request's own
    media_redirect: bool = False  # media whole in one S3 object: a redirect to a presigned URL
    webhook_secret: str | None = (
        None  # default: generated once into DATA/labelstudio-webhook.secret
    )
    # Clients of a running server (the connector)
    server: str | None = (
        None  # HOST:PORT of lensdb's TCP port; None: 127.0.0.1:55555 (or start one)
    )
    http_url: str = "http://127.0.0.1:55556"
    user: str = "admin"
    password: str = ""
    token: str = ""
    ca_cert: Path | None = None  # CA (or self-signed) certificate to check lensdb's TLS with
    state_dir: Path | None = None  # the connector's local state; None: $XDG_STATE_HOME/lensdb
    ls_url: str | None = None  # Label Studio's address
    ls_token: str | None = None  # Label Studio API token
    # The Label Studio plugin (read by its Django settings module)
    ls_default_host: str = ""  # lensdb host offered in the storage form
    ls_default_port: int = 55555
    ls_instance: str | None = None  # Label Studio instance id kept in LS_instance
    sync_page_size: int = 1000  # images listed per query by a source sync
    outbox_retry_seconds: float = 5.0  # how often queued writes are retried while lensdb is down
    redis_url: str | None = None  # run syncs and outbox sends as RQ jobs
    ls_verbose: bool = False  # Label Studio's console keeps tracebacks and request lines (start -v)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every variable in `ENV`; a malformed value raises ValueError naming it."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, (variables, parse) in ENV.items():
            for var in variables:
                raw = env.get(var)
                if raw is None or (raw == "" and parse is not str):
                    continue
                try:
                    values[name] = parse(raw)
                except ValueError as exc:
                    raise ValueError(f"{var}={raw!r}: {exc}") from None
                break
        if "state_dir" not in values:
            values["state_dir"] = _default_state_dir(env)
        return cls(**values)

    def with_options(self, **options: Any) -> Settings:
        """These settings with the given options laid over them; None means "not given"."""
        known = {f.name for f in fields(self)}
        unknown = set(options) - known
        if unknown:
            raise TypeError(f"unknown settings: {', '.join(sorted(unknown))}")
        return replace(self, **{k: v for k, v in options.items() if v is not None})

    @property
    def connector_state(self) -> Path:
        return self.state_dir if self.state_dir is not None else _default_state_dir({})


def _int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError("not an integer") from None


def _float(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ValueError("not a number") from None


def _opt(value: str) -> str | None:
    return value or None


Parse = Callable[[str], Any]

# field -> (variables, first found wins; parser). Empty values count as unset, except for strings.
ENV: dict[str, tuple[tuple[str, ...], Parse]] = {
    "data": (("LENSDB_DATA",), str),
    "server_state": (("LENSDB_STATE",), Path),
    "blobs": (("LENSDB_BLOBS",), _opt),
    "admin_password": (("LENSDB_ADMIN_PASSWORD",), _opt),
    "host": (("LENSDB_HOST",), str),
    "port": (("LENSDB_PORT",), _int),
    "http_port": (("LENSDB_HTTP_PORT",), _int),
    "idle_timeout": (("LENSDB_IDLE_TIMEOUT",), _float),
    "handshake_timeout": (("LENSDB_HANDSHAKE_TIMEOUT",), _float),
    "frame_timeout": (("LENSDB_FRAME_TIMEOUT",), _float),
    "max_connections": (("LENSDB_MAX_CONNECTIONS",), _int),
    "max_message_mb": (("LENSDB_MAX_MESSAGE_MB",), _int),
    "max_query_mb": (("LENSDB_MAX_QUERY_MB",), _int),
    "login_failures_per_minute": (("LENSDB_LOGIN_FAILURES_PER_MINUTE",), _float),
    "login_burst": (("LENSDB_LOGIN_BURST",), _int),
    "vdms": (("LENSDB_VDMS",), _bool),
    "vdms_unauthenticated": (("LENSDB_VDMS_UNAUTHENTICATED",), _bool),
    "vdms_writes": (("LENSDB_VDMS_WRITES",), _bool),
    "cors_origins": (("LENSDB_CORS_ORIGINS",), _origins),
    "dev": (("LENSDB_DEV",), _bool),
    "public_url": (("LENSDB_PUBLIC_URL",), _opt),
    "media_redirect": (("LENSDB_MEDIA_REDIRECT",), _bool),
    "webhook_secret": (("LENSDB_WEBHOOK_SECRET",), _opt),
    "server": (("LENSDB_SERVER",), _opt),
    "http_url": (("LENSDB_HTTP",), str),
    "user": (("LENSDB_USER",), str),
    "password": (("LENSDB_PASSWORD",), str),
    "token": (("LENSDB_TOKEN",), str),
    "ca_cert": (("LENSDB_CA_CERT",), Path),
    "state_dir": (("LENSDB_CONNECTOR_STATE",), Path),
    "ls_url": (("LABEL_STUDIO_URL",), _opt),
    "ls_token": (("LABEL_STUDIO_API_KEY", "LABEL_STUDIO_TOKEN"), _opt),
    "ls_default_host": (("LENSDB_DEFAULT_HOST",), str),
    "ls_default_port": (("LENSDB_DEFAULT_PORT",), _int),
    "ls_instance": (("LENSDB_LS_INSTANCE",), _opt),
    "sync_page_size": (("LENSDB_SYNC_PAGE_SIZE",), _int),
    "outbox_retry_seconds": (("LENSDB_OUTBOX_RETRY_SECONDS",), _float),
    "redis_url": (("LENSDB_REDIS_URL",), _opt),
    "ls_verbose": (("LENSDB_LS_VERBOSE",), _bool),
}
