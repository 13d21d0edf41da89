"""The TCP listener: ApertureDB clients (hello, optional TLS) and VDMS clients on one port.

Each connection is one asyncio task reading frames; the database work for a frame runs
in the shared thread pool, so the event loop only moves bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from concurrent.futures import Executor
from dataclasses import dataclass

from lensdb.errors import failure
from lensdb.server import framing, message
from lensdb.server.channel import ChannelClosed, PlainChannel, TlsChannel
from lensdb.server.dispatch import QueryHandler

log = logging.getLogger(__name__)

STREAM_LIMIT = 4 * 2**20


@dataclass
class TcpOptions:
    host: str = "127.0.0.1"
    port: int = 55555
    max_message_bytes: int = 256 * 2**20
    require_tls: bool = False
    allow_vdms: bool = True
    handshake_timeout: float = 30.0
    idle_timeout: float | None = 600.0


class _Connection:
    def __init__(
        self, server: TcpServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.busy = False
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)

    async def run(self) -> None:
        opts = self.server.options
        channel: PlainChannel = PlainChannel(self.reader, self.writer)
        try:
            head = await asyncio.wait_for(channel.read_exactly(4), opts.handshake_timeout)
            if framing.classify_first_bytes(head) is None:
                head += await asyncio.wait_for(channel.read_exactly(2), opts.handshake_timeout)
                if framing.is_tls_client_hello(head):
                    await self._vdms_tls(head)
                    return
            length = framing.frame_length(head[:4])
            if length > opts.max_message_bytes:
                await self._refuse_oversize(channel, length, vdms=True)
                return
            payload = head[4:] + await asyncio.wait_for(
                channel.read_exactly(length - len(head[4:])), opts.handshake_timeout
            )
            if framing.looks_like_hello(payload):
                await self._aperturedb(channel, payload)
            elif opts.require_tls or not opts.allow_vdms:
                log.info(
                    "%s: refused a plain VDMS client (%s)",
                    self.peer,
                    "TLS required" if opts.require_tls else "VDMS disabled",
                )
            else:
                log.debug("%s: VDMS client (plain)", self.peer)
                await self._serve(channel, vdms=True, first=payload)
        except (ChannelClosed, TimeoutError, ssl.SSLError, ConnectionError) as e:
            log.debug("%s: connection ended: %r", self.peer, e)
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("%s: unexpected error; closing the connection", self.peer)
        finally:
            self.writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.writer.wait_closed(), 2)

    async def _vdms_tls(self, head: bytes) -> None:
        ctx = self.server.vdms_tls_context
        if ctx is None or not self.server.options.allow_vdms:
            log.info("%s: refused a VDMS TLS client (no TLS for VDMS configured)", self.peer)
            return
        channel = TlsChannel(self.reader, self.writer, ctx, already_read=head)
        await asyncio.wait_for(channel.handshake(), self.server.options.handshake_timeout)
        log.debug("%s: VDMS client (TLS)", self.peer)
        await self._serve(channel, vdms=True)

    async def _aperturedb(self, channel: PlainChannel, hello: bytes) -> None:
        version, requested = framing.parse_hello(hello)
        reply_version, granted = framing.negotiate(
            version, requested, self.server.allowed_protocols
        )
        await channel.write(framing.hello_reply(reply_version, granted))
        if reply_version == 0:
            return
        if granted & framing.PROTO_TLS:
            assert self.server.tls_context is not None
            channel = TlsChannel(self.reader, self.writer, self.server.tls_context)
            await asyncio.wait_for(channel.handshake(), self.server.options.handshake_timeout)
        elif not granted & framing.PROTO_TCP:
            log.info("%s: hello asked for protocol %d; not allowed here", self.peer, requested)
            return
        log.debug(
            "%s: ApertureDB client (%s)",
            self.peer,
            "TLS" if granted & framing.PROTO_TLS else "plain",
        )
        await self._serve(channel, vdms=False)

    async def _serve(self, channel: PlainChannel, vdms: bool, first: bytes | None = None) -> None:
        opts = self.server.options
        loop = asyncio.get_running_loop()
        payload = first
        while not self.server.closing:
            if payload is None:
                # asyncio.timeout, unlike wait_for, does not wrap each read in a new task.
                async with asyncio.timeout(opts.idle_timeout) as deadline:
                    head = await channel.read_exactly(4)
                    length = framing.frame_length(head)
                    if length > opts.max_message_bytes:
                        await self._refuse_oversize(channel, length, vdms)
                        return
                    if opts.idle_timeout is not None:
                        deadline.reschedule(loop.time() + opts.idle_timeout)
                    payload = await channel.read_exactly(length)
            self.busy = True
            try:
                handler = self.server.handler
                if handler.is_probe(payload):
                    answer = handler.tcp_payload(payload, vdms)
                else:
                    answer = await loop.run_in_executor(
                        self.server.executor, handler.tcp_payload, payload, vdms
                    )
                payload = None
                await channel.write(framing.frame(answer))
            finally:
                self.busy = False

    async def _refuse_oversize(self, channel: PlainChannel, length: int, vdms: bool) -> None:
        limit = self.server.options.max_message_bytes
        log.warning(
            "%s: message of %d bytes exceeds the %d-byte limit; closing", self.peer, length, limit
        )
        err: dict = failure(f"Message of {length} bytes exceeds the server limit of {limit} bytes")
        body = [dict(err, FailedCommand="Transaction")] if vdms else err
        with contextlib.suppress(ChannelClosed, ConnectionError):
            await channel.write(framing.frame(message.encode(json.dumps(body, sort_keys=vdms))))


class TcpServer:
    def __init__(
        self,
        handler: QueryHandler,
        executor: Executor,
        options: TcpOptions,
        tls_context: ssl.SSLContext | None = None,
        vdms_tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.handler = handler
        self.executor = executor
        self.options = options
        self.tls_context = tls_context
        self.vdms_tls_context = vdms_tls_context if vdms_tls_context is not None else tls_context
        allowed = framing.PROTO_TLS if tls_context is not None else 0
        if not options.require_tls:
            allowed |= framing.PROTO_TCP
        self.allowed_protocols = allowed
        self.closing = False
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task, _Connection] = {}

    async def start(self) -> list[tuple[str, int]]:
        self._server = await asyncio.start_server(
            self._accept,
            self.options.host,
            self.options.port,
            reuse_address=True,
            backlog=512,
            # The reader pauses the socket past 2x this; the 64 KiB default makes big
            # uploads ping-pong between pause and resume.
            limit=STREAM_LIMIT,
        )
        return [s.getsockname()[:2] for s in self._server.sockets]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.closing:
            writer.close()
            return
        conn = _Connection(self, reader, writer)
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = conn
        try:
            await conn.run()
        finally:
            self._connections.pop(task, None)

    async def close(self, grace: float = 30.0) -> None:
        """Stop accepting; let queries in progress finish and answer; close the rest."""
        self.closing = True
        if self._server is not None:
            self._server.close()
        for task, conn in list(self._connections.items()):
            if not conn.busy:
                task.cancel()
        if self._connections:
            _, pending = await asyncio.wait(list(self._connections), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5)
