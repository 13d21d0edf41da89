"""Statuses and errors as clients see them: ApertureDB-style `{"status", "info"}` answers.

`Status` names every status lensdb sends (query-language reference, section 1.4). Answers are
built by `answer` and `failure` so the numbers are written once, here; they hold plain ints,
so a response prints and serialises the same whether it came in-process or over a socket.
"""

from __future__ import annotations

import errno
import os
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


def command_answer(response: Any, command: str, nth: int = 0) -> dict | None:
    """The `nth` answer to `command` in a list of answers, found by the command's name (never by
    its position in the query); None when there is none."""
    if not isinstance(response, list):
        return None
    answers = [item[command] for item in response if isinstance(item, dict) and command in item]
    return answers[nth] if len(answers) > nth else None


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


# -- writes the storage refused ------------------------------------------------------------------

NO_SPACE = "no space left on the device holding the data folder (free some space)"
READ_ONLY = "the data folder is on a read-only file system (make it writable again)"
_OS_CAUSES = {
    errno.ENOSPC: NO_SPACE,
    errno.EDQUOT: "the disk quota of the data folder is exceeded (free some space)",
    errno.EROFS: READ_ONLY,
    errno.EACCES: "permission denied writing to the data folder (check its owner and mode)",
    errno.EPERM: "permission denied writing to the data folder (check its owner and mode)",
    errno.EIO: "an I/O error writing to the data folder (check the disk)",
}
# SQLite's primary result codes (sqlite3.h) for a write the storage refused.
SQLITE_FULL, SQLITE_READONLY, SQLITE_IOERR, SQLITE_CANTOPEN = 13, 8, 10, 14
_SQLITE_CAUSES = {
    SQLITE_FULL: NO_SPACE,
    SQLITE_READONLY: "the database file is read-only (check the data folder's file system, "
    "owner and mode)",
    SQLITE_IOERR: "an I/O error writing the database (check the disk)",
    SQLITE_CANTOPEN: "the database file could not be opened for writing (check the data folder)",
}


def write_refusal_cause(
    folder: str | os.PathLike[str], os_errno: int | None = None, sqlite_code: int | None = None
) -> str | None:
    """Why the storage refused a write, in words an operator can act on, or None when the
    error is not the storage's (a bug, a constraint). The file system's own state is asked
    first: SQLite reports a read-only or full disk met while writing its log as an I/O error."""
    primary = sqlite_code & 0xFF if sqlite_code is not None else None
    cause = _OS_CAUSES.get(os_errno or 0) or _SQLITE_CAUSES.get(primary or 0)
    if cause is None:
        return None
    if primary in (None, SQLITE_FULL):
        return cause
    # SQLite says "I/O error" or "read-only" for a full disk, a read-only remount and a failing
    # disk alike (its errno is not exposed): ask the file system, by writing one byte.
    found = _probe(folder)
    return _OS_CAUSES.get(found or 0, cause)


def _probe(folder: str | os.PathLike[str]) -> int | None:
    """The errno of creating a 1-byte file in `folder`, or None if that works."""
    path = os.path.join(folder, f".lensdb-write-probe-{os.getpid()}")
    try:
        fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
        try:
            os.write(fd, b"x")
        finally:
            os.close(fd)
            os.unlink(path)
    except OSError as e:
        return e.errno
    return None
