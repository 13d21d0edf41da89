"""HTTP limits against hostile clients: body size counted as it arrives, slow bodies and headers.

- `BodyLimit` (ASGI middleware) counts request body bytes as they arrive, chunked uploads with no
  Content-Length and multipart file parts included, and answers 413 as soon as the count passes
  the limit; the connection is then closed, so the rest is never read. A route may lower the
  limit for its request before reading the body (`limit_body`): `/api/` does so for requests
  without a valid session, which is how authentication comes before the body. A body must also
  keep arriving: `frame_timeout` seconds plus one per `MIN_BYTES_PER_SECOND` received, else 408.
- `GuardedHttpToolsProtocol` closes connections whose request headers are not complete within
  `handshake_timeout` seconds of the connection (or of the previous response): uvicorn itself
  times out only idle keep-alive connections, so a client sending a header byte a second, or
  nothing at all, would hold its connection forever.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from lensdb.errors import failure
from lensdb.server.onewrite import HeldHeaders

log = logging.getLogger(__name__)

MIN_BYTES_PER_SECOND = 16 * 1024
LIMIT_KEY = "lensdb.body_limit"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"Request body exceeds the limit of {limit} bytes")
        self.limit = limit


class BodyTooSlow(Exception):
    pass


def limit_body(scope: Scope, limit: int) -> None:
    """Lower this request's body limit (before the body is read)."""
    scope[LIMIT_KEY] = min(limit, scope.get(LIMIT_KEY, limit))


def body_limit(scope: Scope) -> int | None:
    return scope.get(LIMIT_KEY)


class BodyLimit:
    """ASGI middleware: the request body counted as it arrives, and kept arriving."""

    def __init__(self, app: ASGIApp, max_bytes: int, frame_timeout: float = 30.0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.frame_timeout = frame_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope[LIMIT_KEY] = self.max_bytes
        loop = asyncio.get_running_loop()
        started: float | None = None  # the first read: a route may look up a session first
        received = 0
        response_started = False

        async def counted_receive() -> Message:
            nonlocal received, started
            if started is None:
                started = loop.time()
            allowed = started + self.frame_timeout + received / MIN_BYTES_PER_SECOND - loop.time()
            try:
                async with asyncio.timeout(max(allowed, 0.001)):
                    message = await receive()
            except TimeoutError:
                raise BodyTooSlow() from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > scope[LIMIT_KEY]:
                    raise BodyTooLarge(scope[LIMIT_KEY])
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BodyTooLarge as e:
            log.info("%s: request body over %d bytes refused", _client(scope), e.limit)
            if not response_started:
                await _answer(send, 413, f"{e} (lensdb serve --max-message-mb)")
        except BodyTooSlow:
            log.info("%s: request body too slow; closing", _client(scope))
            if not response_started:
                await _answer(send, 408, "Request body arrived too slowly")


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "?"


async def _answer(send: Send, status: int, info: str) -> None:
    body = json.dumps(failure(info)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                # The rest of the body is never read: close rather than parse it.
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def guarded_protocol(handshake_timeout: float) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol with a deadline on each request's headers, writing each
    response's headers and first body part at once (onewrite.py)."""

    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        # When the wait for the next request's headers began; None while one is answered.
        _waiting_since: float | None = None
        _headers_timer: asyncio.TimerHandle | None = None

        def _wait_for_headers(self) -> None:
            # One timer per deadline, re-armed when it fires, rather than one per request: a
            # timer set and cancelled per request cost 3% of a media request (py-spy).
            self._waiting_since = self.loop.time()
            if self._headers_timer is None:
                self._headers_timer = self.loop.call_at(
                    self._waiting_since + handshake_timeout, self._headers_due
                )

        def _headers_due(self) -> None:
            self._headers_timer = None
            since = self._waiting_since
            if since is None:
                return  # a request is being answered; its end starts the next wait
            due = since + handshake_timeout
            if self.loop.time() < due:
                self._headers_timer = self.loop.call_at(due, self._headers_due)
            elif not self.transport.is_closing():
                log.debug("HTTP client %s: request headers too slow; closing", self.client)
                self.transport.close()

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._wait_for_headers()

        def on_headers_complete(self) -> None:
            self._waiting_since = None
            # The cycle uvicorn makes here writes its response through HeldHeaders (onewrite.py).
            transport = self.transport
            self.transport = HeldHeaders(transport, self.loop)  # type: ignore[assignment]
            try:
                super().on_headers_complete()
            finally:
                self.transport = transport

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._wait_for_headers()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._headers_timer is not None:
                self._headers_timer.cancel()
                self._headers_timer = None
            super().connection_lost(exc)

    return GuardedHttpToolsProtocol
