"""Gateway settings, taken from the server's `Settings` when `lensdb serve` builds its HTTP app.

- cors_origins (`--cors-origin`, LENSDB_CORS_ORIGINS): origins allowed to fetch media from a
  browser (e.g. `http://localhost:8080`); none by default.
- dev (`--dev`, LENSDB_DEV=1): development mode, allows every origin (`*`), opens /browse without
  a login, and says so in the log.
- public_url (LENSDB_PUBLIC_URL): base URL put in signed links (default: the URL the request came to).
- webhook_secret (LENSDB_WEBHOOK_SECRET): shared secret Label Studio must send in
  `X-Lensdb-Webhook-Secret` (default: generated once into DATA/labelstudio-webhook.secret).
"""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from lensdb.settings import Settings

log = logging.getLogger("lensdb.gateway")

SECRET_FILE = "gateway.secret"
WEBHOOK_SECRET_FILE = "labelstudio-webhook.secret"
DEFAULT_TTL = 7 * 86400
MAX_TTL = 366 * 86400


def read_or_create_secret(path: Path) -> str:
    """A random secret kept in a 0600 file; created once, race-free (O_EXCL)."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    value = secrets.token_hex(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    return value


@dataclass
class GatewayConfig:
    data_dir: Path
    cors_origins: list[str] = field(default_factory=list)
    dev: bool = False
    public_url: str | None = None
    webhook_secret: str = ""
    default_ttl: int = DEFAULT_TTL
    shared_signing_secret: str = ""  # kept in the database when servers share one
    media_redirect: bool = (
        False  # answer /media with a presigned object-storage URL when one exists
    )

    @property
    def allow_origins(self) -> list[str]:
        return ["*"] if self.dev else list(self.cors_origins)

    @property
    def signing_secret(self) -> bytes:
        if self.shared_signing_secret:
            return self.shared_signing_secret.encode()
        return read_or_create_secret(self.data_dir / SECRET_FILE).encode()

    @classmethod
    def load(cls, data_dir: Path, settings: Settings) -> GatewayConfig:
        data_dir = Path(data_dir)
        hook = settings.webhook_secret or read_or_create_secret(data_dir / WEBHOOK_SECRET_FILE)
        public = settings.public_url
        if "*" in settings.cors_origins and not settings.dev:
            raise ValueError(
                "a CORS origin of '*' lets every web page read your media: name the origins, "
                "or use --dev on a development machine"
            )
        cfg = cls(
            data_dir=data_dir,
            cors_origins=list(settings.cors_origins),
            dev=settings.dev,
            public_url=public.rstrip("/") if public else None,
            webhook_secret=hook,
            shared_signing_secret=settings.signing_secret or "",
            media_redirect=settings.media_redirect,
        )
        if cfg.dev:
            log.warning(
                "gateway in development mode: CORS allows every origin (*) and /browse needs no "
                "login; do not use --dev in production"
            )
        elif cfg.cors_origins:
            log.info("gateway: CORS allowed for %s", ", ".join(cfg.cors_origins))
        else:
            log.info("gateway: no CORS origin allowed (set --cors-origin or LENSDB_CORS_ORIGINS)")
        if cfg.media_redirect:
            log.info(
                "gateway: media held whole in one object are answered with a redirect to a "
                "presigned object-storage URL (--media-redirect)"
            )
        return cfg
