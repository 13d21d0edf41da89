"""The official SDK's Connector (TLS and plain TCP) and ConnectorRest against `lensdb serve`."""

from __future__ import annotations

import json
import socket
import ssl
import struct
import threading

import httpx
import pytest
from aperturedb.Utils import Utils


def _roundtrip(client, cls: str) -> None:
    r, _ = client.query([{"AddEntity": {"class": cls, "properties": {"n": 1}}}])
    assert r[0]["AddEntity"]["status"] == 0, r
    r, _ = client.query([{"FindEntity": {"with_class": cls, "results": {"count": True}}}])
    assert r[0]["FindEntity"]["count"] >= 1, r


@pytest.mark.parametrize(
    "tls",
    [
        {"use_ssl": True, "verify_hostname": False},
        {"use_ssl": True, "verify_hostname": True, "ca": "ca.crt"},
        {"use_ssl": True, "verify_hostname": True, "ca": "server.crt"},
        {"use_ssl": False},
    ],
    ids=["tls-no-verify", "tls-verify-ca", "tls-verify-server-cert", "plain"],
)
def test_connector_tcp(lensdb_server, tls) -> None:
    tls = dict(tls)
    ca = tls.pop("ca", None)
    if ca:
        tls["ca_cert"] = str(lensdb_server.data_dir / "tls" / ca)
    client = lensdb_server.connector(**tls)
    r, blobs = client.query([{"GetStatus": {}}])
    assert r[0]["GetStatus"]["status"] == 0 and blobs == []
    assert client.last_query_ok()
    _roundtrip(client, f"Conn_{'tls' if tls['use_ssl'] else 'tcp'}_{id(client)}")
    # The wire really was TLS when asked for.
    if tls["use_ssl"]:
        assert isinstance(client.conn, ssl.SSLSocket)
    else:
        assert not isinstance(client.conn, ssl.SSLSocket)


def test_tls_is_really_verified(lensdb_server, tmp_path) -> None:
    """A CA that did not sign the server's certificate makes the SDK refuse it."""
    from lensdb.server.tls import generate

    other_ca = tmp_path / "other-ca.crt"
    other_ca.write_bytes(generate()[0])
    client = lensdb_server.connector(ca_cert=str(other_ca), retry_max_attempts=1)
    with pytest.raises(AssertionError, match="Certificate verification failed"):
        client.query([{"GetStatus": {}}])


def test_blobs_round_trip_over_tcp(lensdb_server) -> None:
    client = lensdb_server.connector(use_ssl=False)
    payload = bytes(range(256)) * 1000
    r, _ = client.query([{"AddBlob": {"properties": {"tag": "rt-tcp"}}}], [payload])
    assert r[0]["AddBlob"]["status"] == 0, r
    r, blobs = client.query(
        [{"FindBlob": {"constraints": {"tag": ["==", "rt-tcp"]}, "blobs": True}}]
    )
    assert r[0]["FindBlob"]["returned"] == 1 and blobs == [payload]


def test_connector_rest(lensdb_server) -> None:
    client = lensdb_server.rest_connector()
    r, _ = client.query([{"GetStatus": {}}])
    assert r[0]["GetStatus"]["status"] == 0
    _roundtrip(client, "RestThing")
    payload = b"\xff\xd8not really a jpeg" * 50
    r, _ = client.query([{"AddBlob": {"properties": {"tag": "rt-rest"}}}], [payload])
    assert r[0]["AddBlob"]["status"] == 0, r
    r, blobs = client.query(
        [{"FindBlob": {"constraints": {"tag": ["==", "rt-rest"]}, "blobs": True}}]
    )
    assert blobs == [payload]


def test_rest_wire_format(lensdb_server) -> None:
    """What the SDK relies on: 200 with {"json", "blobs"}, /api and /api/, object errors."""
    base = f"http://127.0.0.1:{lensdb_server.http_port}"
    q = json.dumps([{"GetStatus": {}}])
    r = httpx.post(f"{base}/api", files={"query": (None, q)})
    assert r.status_code == 200
    assert r.json() == {"json": {"status": -1, "info": "Not Authenticated!"}, "blobs": []}
    auth = json.dumps(
        [{"Authenticate": {"username": "admin", "password": lensdb_server.admin_password}}]
    )
    r = httpx.post(f"{base}/api/", files={"query": (None, auth)})
    session = r.json()["json"][0]["Authenticate"]
    assert isinstance(session["session_token_expires_in"], int)
    headers = {"Authorization": f"Bearer {session['session_token']}"}
    r = httpx.post(f"{base}/api/", headers=headers, files=[("query", (None, q))])
    assert r.status_code == 200 and r.json()["json"][0]["GetStatus"]["status"] == 0
    r = httpx.post(f"{base}/api/", headers=headers, files=[("query", (None, "[{"))])
    assert r.status_code == 200 and r.json()["json"]["status"] == -1
    schema = httpx.get(f"{base}/openapi.json").json()
    assert schema["openapi"].startswith("3.") and "post" in schema["paths"]["/api/"]


def test_rest_over_https(lensdb_server_factory) -> None:
    server = lensdb_server_factory("--http-tls")
    client = server.rest_connector(use_ssl=True)
    r, _ = client.query([{"GetStatus": {}}])
    assert r[0]["GetStatus"]["status"] == 0
    assert client.url.startswith("https://")


def test_require_tls_refuses_plain_clients(lensdb_server_factory) -> None:
    server = lensdb_server_factory("--require-tls")
    assert server.connector().query([{"GetStatus": {}}])[0][0]["GetStatus"]["status"] == 0
    with pytest.raises(Exception, match="did not accept protocol"):
        server.connector(use_ssl=False, retry_max_attempts=1).query([{"GetStatus": {}}])


def test_hello_bytes_on_the_wire(lensdb_server) -> None:
    with socket.create_connection(("127.0.0.1", lensdb_server.port)) as s:
        s.sendall(bytes.fromhex("080000000100000001000000"))
        assert s.recv(12) == bytes.fromhex("080000000100000001000000")
    with socket.create_connection(("127.0.0.1", lensdb_server.port)) as s:
        s.sendall(struct.pack("<III", 8, 9, 2))  # unknown version → (0, 0)
        assert s.recv(12) == struct.pack("<III", 8, 0, 0)


def test_clones_share_one_session_across_connections(lensdb_server) -> None:
    client = lensdb_server.connector()
    client.query([{"GetStatus": {}}])
    token = client.shared_data.session.session_token
    errors: list = []

    def work() -> None:
        c = client.clone()
        try:
            for _ in range(20):
                r, _ = c.query([{"FindEntity": {"results": {"count": True}}}])
                assert r[0]["FindEntity"]["status"] == 0, r
        except Exception as e:  # collected for the main thread
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert client.shared_data.session.session_token == token


def test_sdk_utils(lensdb_server_factory) -> None:
    server = lensdb_server_factory()
    u = Utils(server.connector())
    assert u.create_entity_index("_Image", "id")
    r, _ = u.execute(
        [
            {"AddEntity": {"class": "UtilThing", "properties": {"k": 1}}},
            {"AddEntity": {"class": "UtilThing", "properties": {"k": 2}}},
        ]
    )
    assert u.count_entities("UtilThing") == 2
    assert u.count_images() == 0
    schema = u.get_schema()
    assert schema["entities"]["classes"]["UtilThing"]["matched"] == 2
    u.summary()
    assert u.remove_all_objects()
    assert u.count_entities("UtilThing") == 0
    assert u.remove_all_indexes()


def test_survives_a_server_restart(lensdb_server_factory) -> None:
    """Sessions are persisted and the SDK reconnects by itself."""
    server = lensdb_server_factory()
    client = server.connector()
    client.query([{"GetStatus": {}}])
    session = client.shared_data.session.session_token
    server.restart()
    r, _ = client.query([{"GetStatus": {}}])
    assert r[0]["GetStatus"]["status"] == 0
    assert client.shared_data.session.session_token == session
