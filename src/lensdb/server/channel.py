"""Byte channels over an asyncio stream: plain, or TLS driven through memory BIOs.

TLS runs over `ssl.MemoryBIO` rather than `start_tls` because a VDMS client's
ClientHello has already been read (to recognise it) by the time TLS begins, and a
memory BIO can be fed those bytes first.
"""

from __future__ import annotations

import asyncio
import ssl

READ_CHUNK = 256 * 1024
WRITE_SLICE = 1024 * 1024


class ChannelClosed(Exception):
    """The peer went away (EOF, reset, or TLS close)."""


class PlainChannel:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def read_exactly(self, n: int) -> bytes:
        try:
            return await self.reader.readexactly(n)
        except (asyncio.IncompleteReadError, ConnectionError) as e:
            raise ChannelClosed() from e

    async def write(self, data: bytes) -> None:
        transport = self.writer.transport
        if transport.is_closing():
            raise ChannelClosed()
        try:
            self.writer.write(data)
            await self.writer.drain()
        except ConnectionError as e:
            raise ChannelClosed() from e
        except RuntimeError as e:
            # uvloop raises RuntimeError ("the handler is closed"), not ConnectionError, when
            # the peer went away while a response was being written.
            if transport.is_closing():
                raise ChannelClosed() from e
            raise


class TlsChannel(PlainChannel):
    """Server side of TLS on an already-connected stream."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        context: ssl.SSLContext,
        already_read: bytes = b"",
    ) -> None:
        super().__init__(reader, writer)
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self._plain = bytearray()
        if already_read:
            self._incoming.write(already_read)

    async def _receive(self) -> None:
        try:
            data = await self.reader.read(READ_CHUNK)
        except ConnectionError as e:
            raise ChannelClosed() from e
        if not data:
            raise ChannelClosed()
        self._incoming.write(data)

    async def _flush(self) -> None:
        pending = self._outgoing.read()
        if pending:
            await super().write(pending)

    async def handshake(self) -> None:
        while True:
            try:
                self._tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                await self._flush()
                await self._receive()
        await self._flush()

    async def read_exactly(self, n: int) -> bytes:
        while len(self._plain) < n:
            try:
                chunk = self._tls.read(READ_CHUNK)
            except ssl.SSLWantReadError:
                await self._flush()
                await self._receive()
                continue
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError) as e:
                raise ChannelClosed() from e
            if not chunk:
                raise ChannelClosed()
            self._plain += chunk
        data = bytes(self._plain[:n])
        del self._plain[:n]
        return data

    async def write(self, data: bytes) -> None:
        # Encrypt in slices so a large response never sits in memory twice.
        view = memoryview(data)
        while view:
            written = self._tls.write(view[:WRITE_SLICE])
            view = view[written:]
            await self._flush()
