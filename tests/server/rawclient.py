"""A minimal hand-rolled ApertureDB wire client, for checking exact bytes and answers."""

from __future__ import annotations

import json
import socket
import struct
from typing import Any

from lensdb.server import message


class RawClient:
    """Plain-TCP ApertureDB client: hello, then framed queryMessages."""

    def __init__(
        self, port: int, host: str = "127.0.0.1", hello: bool = True, timeout: float = 10
    ) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        if hello:
            self.sock.sendall(struct.pack("<III", 8, 1, 1))
            assert self.recv_frame() == struct.pack("<II", 1, 1)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def recv_exactly(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("closed by server")
            buf += chunk
        return buf

    def recv_frame(self) -> bytes:
        (length,) = struct.unpack("<I", self.recv_exactly(4))
        return self.recv_exactly(length)

    def query(self, q: Any, blobs: list[bytes] = (), token: str = "") -> tuple[Any, list[bytes]]:
        text = q if isinstance(q, str) else json.dumps(q)
        payload = message.encode(text, list(blobs), token)
        self.sock.sendall(struct.pack("<I", len(payload)) + payload)
        reply = message.decode(self.recv_frame())
        return json.loads(reply.json), reply.blobs

    def authenticate(self, username: str, password: str) -> dict:
        r, _ = self.query([{"Authenticate": {"username": username, "password": password}}])
        return r[0]["Authenticate"]
