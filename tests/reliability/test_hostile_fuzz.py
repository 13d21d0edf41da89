"""Fuzzing a real `lensdb serve` layer by layer: TCP hello, framing, protobuf, VDMS/ApertureDB
confusion and the REST multipart endpoint (hypothesis generates the inputs).

Pass: every case gets an answer or a clean close within seconds (no hang), the server never
crashes, logs no unexpected error and its memory stays bounded. Each test prints how many cases it
ran; LENSDB_FUZZ_EXAMPLES sets the number per layer (200 here; bench/fuzz_server.py runs more).
"""

from __future__ import annotations

import json
import os
import socket
import struct

import httpx
import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lensdb.server import message
from server.rawclient import RawClient

EXAMPLES = int(os.environ.get("LENSDB_FUZZ_EXAMPLES", "200"))
MAX_MESSAGE = 4 * 2**20
HANG_SECONDS = 10
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
COUNTS: dict[str, int] = {}


@pytest.fixture(scope="module")
def target(lensdb_module_server_factory):
    server = lensdb_module_server_factory(
        "--vdms",
        "--vdms-unauthenticated",
        "--max-message-mb",
        str(MAX_MESSAGE // 2**20),
        "--frame-timeout",
        "2",
        "--handshake-timeout",
        "2",
        name="fuzz",
    )
    with RawClient(server.port) as c:
        token = c.authenticate("admin", server.admin_password)["session_token"]
    start_rss = psutil.Process(server.proc.pid).memory_info().rss
    yield server, token
    rss = psutil.Process(server.proc.pid).memory_info().rss
    print(
        f"\nfuzz cases per layer: {COUNTS}; server RSS {start_rss / 2**20:.0f} -> "
        f"{rss / 2**20:.0f} MB"
    )
    assert server.running()
    assert (rss - start_rss) < 300 * 2**20
    log = server.log()
    assert "unexpected error" not in log and "Traceback" not in log, log[-4000:]


def _exchange(port: int, data: bytes) -> bytes:
    """Send, close our side, read until the server closes: never more than HANG_SECONDS."""
    with socket.create_connection(("127.0.0.1", port), timeout=HANG_SECONDS) as s:
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            return b""
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                return out
            except TimeoutError:
                raise AssertionError(f"server hung on {data[:64]!r}...") from None
            if not chunk:
                return out
            out += chunk


def _frames(data: bytes) -> list[bytes]:
    out = []
    while len(data) >= 4:
        (n,) = struct.unpack("<I", data[:4])
        if len(data) < 4 + n:
            break
        out.append(data[4 : 4 + n])
        data = data[4 + n :]
    return out


def _alive(server, token: str) -> None:
    with RawClient(server.port) as c:
        r, _ = c.query([{"GetStatus": {}}], token=token)
        assert r[0]["GetStatus"]["status"] == 0


def _count(layer: str) -> None:
    COUNTS[layer] = COUNTS.get(layer, 0) + 1


HELLO = struct.pack("<III", 8, 1, 1)
lengths = st.one_of(
    st.integers(0, 64),
    st.integers(0, MAX_MESSAGE + 16),
    st.sampled_from([2**31, 2**32 - 1, MAX_MESSAGE, MAX_MESSAGE + 1, 8, 7, 9]),
)


@FUZZ
@given(
    version=st.integers(0, 2**32 - 1),
    protocol=st.integers(0, 2**32 - 1),
    length=st.one_of(st.just(8), st.integers(0, 2**32 - 1)),
    tail=st.binary(max_size=24),
    cut=st.integers(0, 12),
)
def test_fuzz_hello(target, version, protocol, length, tail, cut) -> None:
    server, token = target
    data = struct.pack("<III", length, version, protocol)[: 12 - cut % 12 if cut else 12] + tail
    reply = _exchange(server.port, data)
    frames = _frames(reply)
    if frames:  # a hello reply, or an error answer for an oversized or refused first frame
        assert len(frames[0]) == 8 or message.decode(frames[0]).json
    _count("hello")


@FUZZ
@given(
    frames=st.lists(
        st.tuples(lengths, st.binary(max_size=256), st.booleans()), min_size=1, max_size=4
    )
)
def test_fuzz_framing(target, frames) -> None:
    """Random length prefixes (huge ones included) and truncated frames after a valid hello."""
    server, token = target
    data = HELLO
    complete = 0
    for length, body, truncate in frames:
        if truncate or length > 4096:
            data += struct.pack("<I", length) + body[: max(0, min(len(body), length - 1))]
            break
        data += struct.pack("<I", length) + (body * (length // max(1, len(body)) + 1))[:length]
        complete += 1
    reply = _frames(_exchange(server.port, data))
    assert reply[0] == struct.pack("<II", 1, 1)
    for answer in reply[1:]:  # every complete frame is answered (or the connection closes)
        json.loads(message.decode(answer).json)
    _count("framing")


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
commands = st.lists(
    st.dictionaries(
        st.sampled_from(
            [
                "FindEntity",
                "AddEntity",
                "FindImage",
                "AddImage",
                "GetStatus",
                "DeleteEntity",
                "Authenticate",
                "CreateUser",
                "FindDescriptor",
                "AddBlob",
                "Nope",
            ]
        ),
        json_values,
        min_size=1,
        max_size=1,
    ),
    max_size=4,
)
protobuf_field = st.tuples(
    st.integers(1, 6), st.integers(0, 7), st.binary(max_size=64), st.integers(0, 2**64 - 1)
)


@FUZZ
@given(
    shape=st.sampled_from(["raw", "fields", "query"]),
    raw=st.binary(max_size=512),
    fields=st.lists(protobuf_field, max_size=6),
    query=st.one_of(commands.map(json.dumps), st.text(max_size=200)),
    blobs=st.lists(st.binary(max_size=64), max_size=3),
    with_token=st.booleans(),
)
def test_fuzz_protobuf(target, shape, raw, fields, query, blobs, with_token) -> None:
    """Random protobuf payloads: raw bytes, random tags and wire types, and real queryMessages
    with random JSON and blobs (logged in or not), all inside well-formed frames."""
    server, token = target
    if shape == "raw":
        payload = raw
    elif shape == "fields":
        payload = b""
        for number, wire, body, number_value in fields:
            payload += _varint(number << 3 | wire)
            if wire == 0:
                payload += _varint(number_value)
            elif wire == 2:
                payload += _varint(len(body)) + body
            elif wire in (1, 5):
                payload += body[: 8 if wire == 1 else 4]
            else:
                payload += body[:3]
    else:
        payload = message.encode(query, blobs, token if with_token else "")
    reply = _frames(_exchange(server.port, HELLO + struct.pack("<I", len(payload)) + payload))
    assert len(reply) == 2, reply  # the hello reply and exactly one answer
    answer = json.loads(message.decode(reply[1]).json)
    assert isinstance(answer, list | dict)
    if isinstance(answer, dict):
        assert answer["status"] != 0 and answer["info"]
    _count("protobuf")


@FUZZ
@given(
    first=st.sampled_from(["vdms-query", "hello-lookalike", "tls", "vdms-then-hello", "noise"]),
    query=st.one_of(commands.map(json.dumps), st.text(max_size=100)),
    noise=st.binary(min_size=1, max_size=64),
    tag=st.sampled_from([0x0A, 0x12, 0x1A, 0x08, 0x00]),
)
def test_fuzz_vdms_aperturedb_confusion(target, first, query, noise, tag) -> None:
    """Clients of one protocol speaking to the other: VDMS queries, 8-byte payloads that could be
    a hello or a message, TLS records where a frame is expected, and mixes."""
    server, token = target
    vdms = message.encode(query)
    if first == "vdms-query":
        data = struct.pack("<I", len(vdms)) + vdms
    elif first == "hello-lookalike":
        data = struct.pack("<I", 8) + bytes([tag]) + noise[:7].ljust(7, b"\0")
    elif first == "tls":
        data = b"\x16\x03\x01" + struct.pack(">H", len(noise)) + noise
    elif first == "vdms-then-hello":
        data = struct.pack("<I", len(vdms)) + vdms + HELLO
    else:
        data = noise
    reply = _frames(_exchange(server.port, data))
    for answer in reply:
        if len(answer) != 8:
            body = json.loads(message.decode(answer).json)
            if isinstance(body, list) and body and "status" in body[0]:
                assert body[0]["status"] != 0 or "FindEntity" in query or "GetStatus" in query
    _count("vdms-confusion")


part = st.tuples(
    st.sampled_from(["query", "blobs", "other", "", 'query"; name="blobs']),
    st.one_of(st.binary(max_size=128), commands.map(lambda c: json.dumps(c).encode())),
    st.one_of(st.none(), st.text(max_size=12)),
    st.sampled_from(["", "application/octet-stream", "text/plain; charset=utf-8", "\x00"]),
)


@FUZZ
@given(
    parts=st.lists(part, max_size=5),
    boundary=st.text(alphabet="abcXYZ0123456789-_'()+,./:=? ", min_size=1, max_size=40),
    declared=st.one_of(
        st.none(),
        st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40),
    ),
    cut=st.one_of(st.none(), st.integers(0, 400)),
    with_token=st.booleans(),
)
def test_fuzz_rest_multipart(target, parts, boundary, declared, cut, with_token) -> None:
    """Random multipart bodies (broken boundaries, truncation, odd part headers) to POST /api/."""
    server, token = target
    body = b""
    for name, content, filename, ctype in parts:
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"'
        if filename is not None:
            head += f'; filename="{filename}"'
        head += "\r\n"
        if ctype:
            head += f"Content-Type: {ctype}\r\n"
        body += head.encode("utf-8", "replace") + b"\r\n" + content + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    if cut is not None:
        body = body[:cut]
    ctype = f"multipart/form-data; boundary={declared if declared is not None else boundary}"
    headers = {"Content-Type": ctype.encode("utf-8", "replace").decode("latin-1")}
    if with_token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        r = httpx.post(
            f"http://127.0.0.1:{server.http_port}/api/",
            content=body,
            headers=headers,
            timeout=HANG_SECONDS,
        )
    except httpx.LocalProtocolError:  # a header httpx itself refuses to send
        _count("rest-multipart")
        return
    assert r.status_code in (200, 400, 413), (r.status_code, r.text[:200])
    if r.headers.get("content-type") == "application/json":
        reply = r.json()
        assert "json" in reply if r.status_code == 200 else reply["status"] == -1
    else:  # uvicorn's own answer to a request it cannot parse
        assert r.status_code == 400, (r.status_code, r.headers, r.text[:200])
    _count("rest-multipart")


def test_server_survived_the_fuzzing(target) -> None:
    server, token = target
    _alive(server, token)
    assert sum(COUNTS.values()) > 0
