"""Gateway settings: from the server context's free-form settings, else environment variables.

Environment (read when `lensdb serve` builds its HTTP app):
- LENSDB_CORS_ORIGINS: comma-separated origins allowed to fetch media from a browser
  (e.g. `http://localhost:8080`); none by default.
- LENSDB_DEV=1: development mode, allows every origin (`*`) and says so in the log.
- LENSDB_PUBLIC_URL: base URL put in signed links (default: the URL the request came to).
- LENSDB_WEBHOOK_SECRET: shared secret Label Studio must send in `X-Lensdb-Webhook-Secret`
  (default: generated once into DATA/labelstudio-webhook.secret).
"""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("lensdb.gateway")

SECRET_FILE = "gateway.secret"
WEBHOOK_SECRET_FILE = "labelstudio-webhook.secret"
DEFAULT_TTL = 7 * 86400
MAX_TTL = 366 * 86400


def _truthy(value: object) -> bool:
    return str(value or "").strip().lower() in ("1", "true", "yes", "on")


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

    @property
    def allow_origins(self) -> list[str]:
        return ["*"] if self.dev else list(self.cors_origins)

    @property
    def signing_secret(self) -> bytes:
        if self.shared_signing_secret:
            return self.shared_signing_secret.encode()
        return read_or_create_secret(self.data_dir / SECRET_FILE).encode()

    @classmethod
    def load(cls, data_dir: Path, settings: dict[str, Any] | None = None) -> GatewayConfig:
        s = settings or {}
        env = os.environ
        origins = s.get("cors_origins", env.get("LENSDB_CORS_ORIGINS", ""))
        if isinstance(origins, str):
            origins = [o.strip().rstrip("/") for o in origins.split(",") if o.strip()]
        dev = _truthy(s.get("dev", env.get("LENSDB_DEV")))
        public = s.get("public_url", env.get("LENSDB_PUBLIC_URL")) or None
        hook = s.get("webhook_secret", env.get("LENSDB_WEBHOOK_SECRET")) or ""
        data_dir = Path(data_dir)
        if not hook:
            hook = read_or_create_secret(data_dir / WEBHOOK_SECRET_FILE)
        cfg = cls(data_dir=data_dir, cors_origins=list(origins), dev=dev,
                  public_url=public.rstrip("/") if public else None, webhook_secret=hook,
                  shared_signing_secret=s.get("signing_secret", ""))
        if dev:
            log.warning("gateway in development mode: CORS allows every origin (*); "
                        "do not use --dev in production")
        elif cfg.cors_origins:
            log.info("gateway: CORS allowed for %s", ", ".join(cfg.cors_origins))
        else:
            log.info("gateway: no CORS origin allowed (set LENSDB_CORS_ORIGINS or --cors-origin)")
        return cfg
