"""What the running server shares with its transports and with route extensions."""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lensdb.auth.service import AuthService
from lensdb.server.dispatch import QueryEngine, QueryHandler


@dataclass
class ServerContext:
    db: QueryEngine
    auth: AuthService
    handler: QueryHandler
    executor: Executor
    data_dir: Path
    max_message_bytes: int = 256 * 2**20
    # Free-form settings for extensions (e.g. public base URL); never required.
    settings: dict[str, Any] = field(default_factory=dict)
