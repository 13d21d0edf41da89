"""Statuses and errors as clients see them: ApertureDB-style `{"status", "info"}` answers.

`Status` names every status lensdb sends (query-language reference, section 1.4). Answers are
built by `answer` and `failure` so the numbers are written once, here; they hold plain ints,
so a response prints and serialises the same whether it came in-process or over a socket.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any


class Status(IntEnum):
    """ApertureDB's status codes."""

    ERROR = -1  # anything else went wrong; `info` says what
    OK = 0  # also for a Find that matched nothing and an Update/Delete that touched nothing
    EMPTY = 1  # documented by ApertureDB, never sent by lensdb (it breaks SDK wipes)
    EXISTS = 2  # Add* with if_not_found met an existing object; CreateIndex on an existing index
    NOT_UNIQUE = 3  # `unique: true` matched more than one object; the transaction fails
    RESPONSE_TOO_LARGE = 4  # the blobs asked for exceed the server's response limit


# Statuses after which a command counts as done (the SDK's ParallelQuery accepts the same).
SUCCESS = frozenset({Status.OK, Status.EXISTS})


def answer(status: Status = Status.OK, **fields: Any) -> dict[str, Any]:
    """One command's answer, e.g. `answer(count=3)` -> `{"status": 0, "count": 3}`."""
    return {"status": int(status), **fields}


def failure(info: str, status: int = Status.ERROR, **fields: Any) -> dict[str, Any]:
    """A refused query or command: `{"status": -1, "info": ...}`."""
    return {"status": int(status), "info": info, **fields}


def _status(value: int) -> Status | int:
    try:
        return Status(value)
    except ValueError:  # another server's code (e.g. the SDK's client-side -2): keep it as is
        return int(value)


class LensdbError(Exception):
    """Base of every error a client is shown: a status and an `info` that says what to do."""

    def __init__(self, info: str, status: int = Status.ERROR) -> None:
        super().__init__(info)
        self.info = info
        self.status = _status(status)

    def response(self) -> dict[str, Any]:
        return failure(self.info, self.status)


class QueryError(LensdbError):
    """The whole transaction fails; `status` and `info` are what the client sees."""

    def __init__(self, info: str, status: int = Status.ERROR, command: str | None = None) -> None:
        super().__init__(info, status)
        self.command = command

    def response(self) -> dict[str, Any]:
        if not self.command:
            return failure(self.info, self.status)
        return failure(f"{self.command}: {self.info}", self.status, FailedCommand=self.command)


def response_status(response: Any) -> int:
    """The worst status in an answer: the first negative one, else the highest.

    A failed transaction is one `{"status", "info"}` object; otherwise there is one
    `{Command: {"status", ...}}` per command.
    """
    if isinstance(response, dict):
        if "status" in response:
            return int(response["status"])
        return max((response_status(v) for v in response.values()), default=int(Status.OK))
    if isinstance(response, list):
        statuses = [response_status(x) for x in response]
        negative = [s for s in statuses if s < Status.OK]
        return min(negative) if negative else max(statuses, default=int(Status.OK))
    return int(Status.OK)


def error_info(response: Any) -> str:
    """What a failed answer says, naming the failed command when there is one."""
    if isinstance(response, dict):
        return str(response.get("info") or response)
    if isinstance(response, list):
        for item in response:
            for name, body in (item or {}).items():
                if isinstance(body, dict) and body.get("status", Status.OK) < Status.OK:
                    return f"{name}: {body.get('info', 'failed')}"
    return str(response)[:500]
