"""What the running server shares with its transports and with route extensions."""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path

from lensdb.auth.service import AuthService
from lensdb.server.dispatch import QueryEngine, QueryHandler
from lensdb.settings import Settings


@dataclass
class ServerContext:
    db: QueryEngine
    auth: AuthService
    handler: QueryHandler
    executor: Executor
    data_dir: Path
    max_message_bytes: int = 256 * 2**20
    # What the server was told from outside; extensions (the gateway) read their part of it.
    settings: Settings = field(default_factory=Settings)
