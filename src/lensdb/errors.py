"""Errors that end a query. Each maps onto an ApertureDB-style `{"status", "info"}` answer."""

from __future__ import annotations

ERROR = -1
OBJECT_EXISTS = 2  # not an error: an if_not_found (or a unique name) matched
NOT_UNIQUE = 3
RESPONSE_TOO_LARGE = 4


class QueryError(Exception):
    """The whole transaction fails; `status` and `info` are what the client sees."""

    def __init__(self, info: str, status: int = ERROR, command: str | None = None) -> None:
        super().__init__(info)
        self.info = info
        self.status = status
        self.command = command

    def response(self) -> dict:
        info = f"{self.command}: {self.info}" if self.command else self.info
        out: dict = {"status": self.status, "info": info}
        if self.command:
            out["FailedCommand"] = self.command
        return out
