"""One write per small HTTP response: the header block waits for the body's first part.

uvicorn writes a response's status line and headers, then its body, as two `transport.write`
calls, and uvloop sends each at once: two system calls and two TCP segments per response. For
the media gateway's 10 KB images those two sends took a third of the server's time (py-spy on
bench/connector.py --only gateway). `HeldHeaders` stands between a request's uvicorn cycle and
the connection: it keeps the header block and sends it together with the first body part (one
`writelines`, one system call): 59 us of server CPU per media request instead of 64-70, and
11,100-11,600 requests/s instead of 7,800-9,000 in the same runs (one process, see
`lensdb.gateway.front`). A response whose body does not follow in the same step of the
event loop (HEAD, a stream whose first part is slow) gets its headers sent on the next step, so
no client waits longer for them than before.
"""

from __future__ import annotations

import asyncio
from typing import Any

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"  # sent while reading a request: never held


class HeldHeaders:
    """A transport for one request/response cycle; everything but `write` and `close` goes
    straight to the connection's transport."""

    __slots__ = ("_transport", "_loop", "_held", "_started")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None
        self._started = False

    def write(self, data: bytes) -> None:
        if not self._started and data != _CONTINUE:
            self._started = True  # the response's header block
            self._held = data
            self._loop.call_soon(self.flush)
            return
        held = self._held
        if held is None:
            self._transport.write(data)
        else:
            self._held = None
            if data:
                self._transport.writelines((held, data))
            else:  # an empty body (a 304): the headers are the whole response
                self._transport.write(held)

    def flush(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            if not self._transport.is_closing():
                self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)
