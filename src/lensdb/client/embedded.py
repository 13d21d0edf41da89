"""lensdb in the same process, behind the same client API as the TCP and HTTP clients.

It wraps anything with `Database.query`'s signature, handed in by the caller
(`EmbeddedClient(lensdb.Database(path))`), so the client package never imports the engine.
"""

from __future__ import annotations

from typing import Any, Protocol

from lensdb.client.base import refusal
from lensdb.errors import SUCCESS


class QueryEngine(Protocol):
    def query(self, commands: Any, blobs: list[bytes] | None = None) -> tuple[Any, list[bytes]]: ...


class EmbeddedClient:
    def __init__(self, engine: QueryEngine, close_engine: bool = True) -> None:
        self.engine = engine
        self.close_engine = close_engine

    def query(
        self,
        commands: list[dict],
        blobs: list[bytes] | None = None,
        ok: frozenset[int] | tuple[int, ...] = SUCCESS,
    ) -> tuple[list[dict], list[bytes]]:
        response, out = self.engine.query(commands, blobs or [])
        error = refusal(response, ok)
        if error is not None:
            raise error
        return response, list(out)

    def status(self) -> dict:
        (answer,), _ = self.query([{"GetStatus": {}}])
        return answer["GetStatus"]

    def close(self) -> None:
        close = getattr(self.engine, "close", None)
        if self.close_engine and close is not None:
            close()
