"""lensdb.client: one API over TCP, HTTP and in-process, against a real `lensdb serve`; cheap to import."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest
from PIL import Image

import lensdb
from lensdb.client import (
    Client,
    ConnectionSettings,
    DatabaseError,
    DatabaseUnavailable,
    EmbeddedClient,
    HttpClient,
    TcpClient,
    connect,
)
from lensdb.errors import Status


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    return set(out.split())


def test_importing_the_client_loads_neither_engine_nor_pillow() -> None:
    for statement in ("import lensdb.client", "import lensdb"):
        mods = _loaded_after(statement)
        heavy = sorted(
            m for m in mods if m.startswith(("lensdb.engine", "lensdb.store", "PIL", "aperturedb"))
        )
        assert heavy == [], f"{statement} loaded {heavy}"
    assert "lensdb.engine.database" in _loaded_after("import lensdb; lensdb.Database")


def _jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 6), (200, 10, 10)).save(out, "JPEG")
    return out.getvalue()


def _roundtrip(db: Client, tag: str) -> None:
    """The same calls, whichever client: one transaction with a blob in, a count and the blob out."""
    assert isinstance(db, Client)
    jpeg = _jpeg()
    db.query([{"AddImage": {"properties": {"client_test": tag}}}], [jpeg])
    add = {
        "AddEntity": {
            "class": "ClientTest",
            "properties": {"tag": tag},
            "if_not_found": {"tag": ["==", tag]},
        }
    }
    response, _ = db.query([add, add])
    assert [r["AddEntity"]["status"] for r in response] == [Status.OK, Status.EXISTS]
    (found,), blobs = db.query(
        [
            {
                "FindImage": {
                    "constraints": {"client_test": ["==", tag]},
                    "blobs": True,
                    "results": {"count": True},
                }
            }
        ]
    )
    assert found["FindImage"]["count"] == 1 and blobs == [jpeg]
    twin = {"AddEntity": {"class": "ClientTwin", "properties": {"tag": tag}}}
    with pytest.raises(DatabaseError) as refused:
        db.query([twin, twin, {"FindEntity": {"with_class": "ClientTwin", "unique": True}}])
    assert not isinstance(refused.value, DatabaseUnavailable)
    assert refused.value.status == Status.NOT_UNIQUE and "unique" in refused.value.info
    (twins,), _ = db.query(
        [{"FindEntity": {"with_class": "ClientTwin", "results": {"count": True}}}]
    )
    assert twins["FindEntity"]["count"] == 0  # the refused transaction left nothing behind
    assert db.status()["status"] == Status.OK


def test_one_api_over_tcp_http_and_in_process(lensdb_server, tmp_path) -> None:
    tcp = connect(
        f"localhost:{lensdb_server.port}",
        password=lensdb_server.admin_password,
        ca_cert=lensdb_server.ca_cert,
    )
    http = connect(
        f"http://127.0.0.1:{lensdb_server.http_port}", password=lensdb_server.admin_password
    )
    assert isinstance(tcp, TcpClient) and isinstance(http, HttpClient)
    embedded = EmbeddedClient(lensdb.Database(tmp_path / "db"))
    try:
        _roundtrip(tcp, "tcp")
        _roundtrip(http, "http")
        _roundtrip(embedded, "embedded")
    finally:
        tcp.close()
        http.close()
        embedded.close()


def test_errors_say_what_is_wrong(lensdb_server) -> None:
    bad_tcp = connect(
        f"localhost:{lensdb_server.port}", password="wrong", ca_cert=lensdb_server.ca_cert
    )
    with pytest.raises(DatabaseUnavailable, match="refused the login"):
        bad_tcp.query([{"GetStatus": {}}])
    bad_http = HttpClient(f"http://127.0.0.1:{lensdb_server.http_port}", password="wrong")
    with pytest.raises(DatabaseUnavailable, match="refused the login"):
        bad_http.query([{"GetStatus": {}}])
    bad_http.close()
    nobody = TcpClient(ConnectionSettings(host="127.0.0.1", port=9, password="x"))
    with pytest.raises(DatabaseUnavailable, match="Nothing is listening at 127.0.0.1:9"):
        nobody.query([{"GetStatus": {}}])
    with pytest.raises(DatabaseUnavailable, match="Nothing answers at http://127.0.0.1:9"):
        HttpClient("http://127.0.0.1:9", password="x").query([{"GetStatus": {}}])
    with pytest.raises(ValueError, match="HOST:PORT"):
        connect("no-port-here")
