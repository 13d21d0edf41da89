"""Length-prefixed framing, the ApertureDB hello, and telling client families apart.

Every TCP message is a little-endian uint32 length followed by that many payload bytes.
ApertureDB clients open with an 8-byte hello frame; VDMS clients send a query frame (or a
TLS ClientHello) straight away. See wire-protocol.md §2, §3 and §8.3.
"""

from __future__ import annotations

import enum
import struct

PREFIX = struct.Struct("<I")
HELLO = struct.Struct("<II")
PROTOCOL_VERSION = 1
PROTO_TCP = 1
PROTO_TLS = 2

# Tags a queryMessage payload can start with (fields 1, 2, 3, length-delimited).
_MESSAGE_TAGS = (0x0A, 0x12, 0x1A)


def frame(payload: bytes) -> bytes:
    """Prefix and payload as one buffer, so they go out in a single write."""
    return PREFIX.pack(len(payload)) + payload


def frame_length(prefix: bytes) -> int:
    return PREFIX.unpack(prefix)[0]


class Opening(enum.Enum):
    """What the first bytes of a new connection say about the client."""

    TLS_CLIENT_HELLO = "tls"  # VDMS client using TLS from byte 0
    FRAME = "frame"  # a length prefix: hello or VDMS query, decided on the payload


def classify_first_bytes(head: bytes) -> Opening | None:
    """Classify from the first 4 bytes; None means "need 2 more bytes to decide".

    A TLS record header is 16 03 0x LL LL; the byte after it is 01 for a ClientHello.
    Read as a length prefix such a header would announce a frame of at least 66326 bytes,
    so waiting for two more bytes can never stall a real VDMS client.
    """
    if head[0] == 0x16 and head[1] == 0x03 and 1 <= head[2] <= 4:
        return None
    return Opening.FRAME


def is_tls_client_hello(head6: bytes) -> bool:
    return head6[0] == 0x16 and head6[1] == 0x03 and 1 <= head6[2] <= 4 and head6[5] == 0x01


def looks_like_hello(payload: bytes) -> bool:
    """An 8-byte payload that cannot be a queryMessage is an ApertureDB hello."""
    return len(payload) == HELLO.size and payload[0] not in _MESSAGE_TAGS


def parse_hello(payload: bytes) -> tuple[int, int]:
    return HELLO.unpack(payload)


def hello_reply(version: int, protocol: int) -> bytes:
    return frame(HELLO.pack(version, protocol))


def negotiate(version: int, requested: int, allowed: int) -> tuple[int, int]:
    """Reply (version, protocol) for a hello, as aperturedb's reference server does.

    The granted set is `requested & allowed`; the Python SDK asks for exactly 1 or 2 and
    insists on getting the same value back, so only a client asking for 3 can see 3.
    """
    if version != PROTOCOL_VERSION:
        return 0, 0
    return PROTOCOL_VERSION, requested & allowed
