"""What every lensdb client offers, however it reaches the database, and the errors it raises."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from lensdb.errors import SUCCESS, LensdbError, Status, error_info, response_status


class DatabaseError(LensdbError):
    """The database answered, but refused the query (`status` and `info` are the server's)."""


class DatabaseUnavailable(DatabaseError):
    """The database could not be reached or refused the login; worth retrying later.

    `field` names the connection setting the problem points at (hostname, port, password, use_ssl),
    so a form (the Label Studio plugin's storage dialog) can say which field to change.
    """

    def __init__(self, info: str, status: int = Status.ERROR, field: str | None = None) -> None:
        super().__init__(info, status)
        self.field = field


@runtime_checkable
class Client(Protocol):
    """One query API over TCP (`TcpClient`), HTTP (`HttpClient`) or in-process (`EmbeddedClient`).

    `query` runs one transaction and returns `(responses, blobs)` when every command's
    status is in `ok`; otherwise it raises DatabaseError (refused) or DatabaseUnavailable
    (not reached, or the login was refused: retry later).
    """

    def query(
        self,
        commands: list[dict],
        blobs: list[bytes] | None = None,
        ok: frozenset[int] | tuple[int, ...] = ...,
    ) -> tuple[list[dict], list[bytes]]: ...

    def status(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


def refusal(response: Any, ok: frozenset[int] | tuple[int, ...] = SUCCESS) -> DatabaseError | None:
    """The error to raise for an answer whose worst status is not in `ok`, or None.

    A refused session (expired, revoked) is DatabaseUnavailable: logging in again may help.
    """
    status = response_status(response)
    if status in {*ok, Status.EMPTY}:
        return None
    info = error_info(response)
    if "authenticat" in info.lower():
        return DatabaseUnavailable(
            f"The server refused the session: {info}", status, field="password"
        )
    return DatabaseError(info, status)
