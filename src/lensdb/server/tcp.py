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
from lensdb.server.dispatch import QueryHandler, Request

log = logging.getLogger(__name__)

STREAM_LIMIT = 4 * 2**20
# A begun message may take `frame_timeout` plus one second per this many bytes: a real client,
# even on a slow link, sends far faster; one sending a byte a second is cut off.
MIN_BYTES_PER_SECOND = 16 * 1024
# How often "connection limit reached" is logged at most (a flood would fill the log).
REFUSAL_LOG_SECONDS = 10.0


@dataclass
class TcpOptions:
    host: str = "127.0.0.1"
    port: int = 55555
    max_message_bytes: int = 256 * 2**20
    require_tls: bool = False
    allow_vdms: bool = False
    # VDMS has no login: clients are either certified (vdms_client_ca given, TLS with a client
    # certificate: full access) or explicitly accepted anonymously (read-only unless vdms_writes).
    vdms_unauthenticated: bool = False
    vdms_writes: bool = False
    vdms_certified: bool = False
    handshake_timeout: float = 10.0
    idle_timeout: float | None = 600.0
    frame_timeout: float = 30.0
    max_connections: int = 4096

    def frame_deadline(self, length: int) -> float:
        """Seconds a frame of `length` bytes may take to arrive once its first byte has."""
        return self.frame_timeout + length / MIN_BYTES_PER_SECOND


class _Connection:
    def __init__(
        self, server: TcpServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.busy = False
        peer = writer.get_extra_info("peername")
        self.address = str(peer[0]) if isinstance(peer, tuple) else str(peer)
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)

    async def run(self) -> None:
        try:
            opened = await self._open()
            if opened is not None:
                channel, vdms, first = opened
                await self._serve(channel, vdms, first)
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

    async def _open(self) -> tuple[PlainChannel, str | None, bytes | None] | None:
        """Hello and TLS (or a VDMS client's first frame), all within the handshake timeout.

        Returns the channel, the VDMS access ("read", "write") or None for ApertureDB, and
        a VDMS client's first query; None when the connection is refused.
        """
        opts = self.server.options
        loop = asyncio.get_running_loop()
        channel: PlainChannel = PlainChannel(self.reader, self.writer)
        async with asyncio.timeout(opts.handshake_timeout) as deadline:
            head = await channel.read_exactly(4)
            if framing.classify_first_bytes(head) is None:
                head += await channel.read_exactly(2)
                if framing.is_tls_client_hello(head):
                    return await self._vdms_tls(head)
            length = framing.frame_length(head[:4])
            plain_vdms = self._plain_vdms_access()
            if length != framing.HELLO.size and plain_vdms is None:
                # Only a hello may come first: refuse before reading what is announced.
                log.debug(
                    "%s: refused a first message of %d bytes (not a hello)", self.peer, length
                )
                return None
            if length > opts.max_message_bytes:
                await self._refuse_oversize(channel, length, vdms=True)
                return None
            deadline.reschedule(
                loop.time() + opts.handshake_timeout + length / MIN_BYTES_PER_SECOND
            )
            payload = head[4:] + await channel.read_exactly(length - len(head[4:]))
            if framing.looks_like_hello(payload):
                return await self._aperturedb(channel, payload)
            if plain_vdms is None:
                log.info("%s: refused a plain VDMS client (%s)", self.peer, self._vdms_refusal())
                return None
            log.debug("%s: VDMS client (plain, %s)", self.peer, plain_vdms)
            return channel, plain_vdms, payload

    def _plain_vdms_access(self) -> str | None:
        opts = self.server.options
        if not opts.allow_vdms or opts.require_tls or not opts.vdms_unauthenticated:
            return None
        return "write" if opts.vdms_writes else "read"

    def _vdms_refusal(self) -> str:
        opts = self.server.options
        if not opts.allow_vdms:
            return "VDMS disabled"
        if opts.require_tls:
            return "TLS required"
        return "client certificate required"

    async def _vdms_tls(self, head: bytes) -> tuple[PlainChannel, str, None] | None:
        opts = self.server.options
        ctx = self.server.vdms_tls_context
        if ctx is None or not opts.allow_vdms:
            log.info("%s: refused a VDMS TLS client (VDMS disabled)", self.peer)
            return None
        if opts.vdms_certified:  # the context requires and checks a client certificate
            access = "write"
        elif opts.vdms_unauthenticated:
            access = "write" if opts.vdms_writes else "read"
        else:
            log.info("%s: refused a VDMS TLS client (no client certificate required)", self.peer)
            return None
        channel = TlsChannel(self.reader, self.writer, ctx, already_read=head)
        await channel.handshake()
        log.debug("%s: VDMS client (TLS, %s)", self.peer, access)
        return channel, access, None

    async def _aperturedb(
        self, channel: PlainChannel, hello: bytes
    ) -> tuple[PlainChannel, None, None] | None:
        version, requested = framing.parse_hello(hello)
        reply_version, granted = framing.negotiate(
            version, requested, self.server.allowed_protocols
        )
        await channel.write(framing.hello_reply(reply_version, granted))
        if reply_version == 0:
            return None
        if granted & framing.PROTO_TLS:
            assert self.server.tls_context is not None
            channel = TlsChannel(self.reader, self.writer, self.server.tls_context)
            await channel.handshake()
        elif not granted & framing.PROTO_TCP:
            log.info("%s: hello asked for protocol %d; not allowed here", self.peer, requested)
            return None
        log.debug(
            "%s: ApertureDB client (%s)",
            self.peer,
            "TLS" if granted & framing.PROTO_TLS else "plain",
        )
        return channel, None, None

    async def _serve(self, channel: PlainChannel, vdms: str | None, first: bytes | None) -> None:
        opts = self.server.options
        loop = asyncio.get_running_loop()
        payload = first
        while not self.server.closing:
            if payload is None:
                # asyncio.timeout, unlike wait_for, does not wrap each read in a new task.
                async with asyncio.timeout(opts.idle_timeout) as deadline:
                    head = await channel.read_exactly(1)
                    # Begun: the rest must follow promptly, not a byte now and then.
                    deadline.reschedule(loop.time() + opts.frame_timeout)
                    head += await channel.read_exactly(3)
                    length = framing.frame_length(head)
                    if length > opts.max_message_bytes:
                        await self._refuse_oversize(channel, length, vdms is not None)
                        return
                    deadline.reschedule(loop.time() + opts.frame_deadline(length))
                    payload = await channel.read_exactly(length)
            self.busy = True
            try:
                handler = self.server.handler
                request = Request(payload, self.address, vdms)
                if handler.is_probe(payload):
                    answer = handler.tcp_payload(request)
                else:
                    pool = handler.pool_for(payload, self.server.executor)
                    answer = await loop.run_in_executor(pool, handler.tcp_payload, request)
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
        with contextlib.suppress(ChannelClosed):
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
        self.refused = 0  # connections turned away at the limit
        self._refusal_logged = 0.0

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
        if len(self._connections) >= self.options.max_connections:
            self.refused += 1
            now = asyncio.get_running_loop().time()
            if now - self._refusal_logged > REFUSAL_LOG_SECONDS:
                self._refusal_logged = now
                log.warning(
                    "connection limit (%d) reached: refusing new connections (%d so far)",
                    self.options.max_connections,
                    self.refused,
                )
            writer.transport.abort()
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
