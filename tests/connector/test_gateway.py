"""The media gateway on a real `lensdb serve`: auth, signed links, ETag, Range, CORS, transforms, crops."""

from __future__ import annotations

import io
import re
import socket
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

from lensdb.gateway.config import SECRET_FILE
from lensdb.gateway.signing import Signer

from .conftest import LensdbServer
from .helpers import add_images, session_token, uniqueids

ALLOWED = "http://labeling.example:8080"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    server = LensdbServer(
        tmp_path_factory.mktemp("gw") / "data", env={"LENSDB_CORS_ORIGINS": ALLOWED}
    ).start()
    client = server.connector()
    add_images(client, 3, "gw", boxes=True, polygons=True)
    ids = uniqueids(client, {"dataset": ["==", "gw"]})
    token = session_token(server)
    http = httpx.Client(base_url=f"http://127.0.0.1:{server.http_port}")
    yield server, http, token, ids
    http.close()
    server.stop()


def _auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_session_access_and_content(gateway) -> None:
    server, http, token, ids = gateway
    r = http.get(f"/media/images/{ids[0]}")
    assert r.status_code == 401 and "Bearer" in r.json()["info"]
    assert http.get(f"/media/images/{ids[0]}", headers=_auth("nope")).status_code == 401
    r = http.get(f"/media/images/{ids[0]}", headers=_auth(token))
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    stored, blobs = server.connector().query(
        [{"FindImage": {"constraints": {"_uniqueid": ["==", ids[0]]}, "blobs": True}}]
    )
    assert r.content == blobs[0]
    assert r.headers["etag"].startswith('"') and r.headers["accept-ranges"] == "bytes"
    assert "no-cache" in r.headers["cache-control"]
    assert http.get("/media/images/2.0.999999", headers=_auth(token)).status_code == 404


def test_etag_and_range(gateway) -> None:
    _, http, token, ids = gateway
    full = http.get(f"/media/images/{ids[1]}", headers=_auth(token))
    etag = full.headers["etag"]
    r = http.get(f"/media/images/{ids[1]}", headers={**_auth(token), "If-None-Match": etag})
    assert r.status_code == 304 and r.content == b"" and r.headers["etag"] == etag
    r = http.get(f"/media/images/{ids[1]}", headers={**_auth(token), "If-None-Match": '"other"'})
    assert r.status_code == 200
    r = http.get(f"/media/images/{ids[1]}", headers={**_auth(token), "Range": "bytes=0-99"})
    assert r.status_code == 206 and r.content == full.content[:100]
    assert r.headers["content-range"] == f"bytes 0-99/{len(full.content)}"
    r = http.get(f"/media/images/{ids[1]}", headers={**_auth(token), "Range": "bytes=-10"})
    assert r.status_code == 206 and r.content == full.content[-10:]
    r = http.get(
        f"/media/images/{ids[1]}", headers={**_auth(token), "Range": f"bytes={len(full.content)}-"}
    )
    assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{len(full.content)}"
    # If-Range with another version sends the whole image.
    r = http.get(
        f"/media/images/{ids[1]}", headers={**_auth(token), "Range": "bytes=0-9", "If-Range": '"x"'}
    )
    assert r.status_code == 200 and r.content == full.content


def test_transforms_lookup_and_crops(gateway) -> None:
    _, http, token, ids = gateway
    r = http.get(
        f"/media/images/{ids[0]}", params={"width": 32, "format": "png"}, headers=_auth(token)
    )
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(r.content)).size == (32, 24)
    small_etag = r.headers["etag"]
    r = http.get(
        f"/media/images/{ids[0]}",
        params={"width": 32, "format": "png"},
        headers={**_auth(token), "If-None-Match": small_etag},
    )
    assert r.status_code == 304
    r = http.get(f"/media/images/{ids[0]}", params={"crop": "4,6,20,16"}, headers=_auth(token))
    assert Image.open(io.BytesIO(r.content)).size == (20, 16)
    assert (
        http.get(
            f"/media/images/{ids[0]}", params={"width": "-3"}, headers=_auth(token)
        ).status_code
        == 400
    )
    r = http.get("/media/images/by/guid/gw-2", headers=_auth(token))
    assert r.status_code == 200
    assert r.content == http.get(f"/media/images/{ids[2]}", headers=_auth(token)).content
    assert http.get("/media/images/by/dataset/gw", headers=_auth(token)).status_code == 409
    assert http.get("/media/images/by/guid/none", headers=_auth(token)).status_code == 404
    box = (
        gateway[0]
        .connector()
        .query([{"FindBoundingBox": {"uniqueids": True, "blobs": False, "results": {"limit": 1}}}])[
            0
        ]
    )
    box_uid = box[0]["FindBoundingBox"]["entities"][0]["_uniqueid"]
    r = http.get(f"/media/boxes/{box_uid}", headers=_auth(token))
    assert r.status_code == 200 and Image.open(io.BytesIO(r.content)).size == (20, 16)
    r = http.get(
        f"/media/boxes/{box_uid}", params={"width": 10, "format": "png"}, headers=_auth(token)
    )
    assert r.headers["content-type"] == "image/png" and Image.open(io.BytesIO(r.content)).size == (
        10,
        8,
    )
    poly = (
        gateway[0]
        .connector()
        .query([{"FindPolygon": {"uniqueids": True, "blobs": False, "results": {"limit": 1}}}])[0]
    )
    poly_uid = poly[0]["FindPolygon"]["entities"][0]["_uniqueid"]
    assert http.get(f"/media/polygons/{poly_uid}", headers=_auth(token)).status_code == 200


def test_blobs(gateway) -> None:
    server, http, token, _ = gateway
    r, _ = server.connector().query(
        [
            {"AddBlob": {"properties": {"name": "gw-blob"}}},
            {"FindBlob": {"constraints": {"name": ["==", "gw-blob"]}, "uniqueids": True}},
        ],
        [b"hello blob"],
    )
    uid = r[1]["FindBlob"]["entities"][0]["_uniqueid"]
    r = http.get(f"/media/blobs/{uid}", headers=_auth(token))
    assert r.status_code == 200 and r.content == b"hello blob"
    assert r.headers["content-type"] == "application/octet-stream"


def _signer(server) -> Signer:
    return Signer((Path(server.data_dir) / SECRET_FILE).read_text().strip().encode())


def test_signed_links(gateway) -> None:
    server, http, _, ids = gateway
    signer = _signer(server)
    url = signer.sign(f"/media/images/{ids[0]}", 60)
    r = http.get(url)
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert r.headers["cache-control"].startswith("private, max-age=")
    assert 0 < int(r.headers["cache-control"].split("=")[1]) <= 60
    # Another image, an edited parameter or an added one: refused.
    assert http.get(url.replace(ids[0], ids[1])).status_code == 403
    thumb = signer.sign(f"/media/images/{ids[0]}", 60, {"width": 16})
    assert http.get(thumb).status_code == 200
    assert http.get(thumb.replace("width=16", "width=64")).status_code == 403
    assert http.get(url + "&format=png").status_code == 403
    tampered = url[:-3] + ("AAA" if not url.endswith("AAA") else "BBB")
    r = http.get(tampered)
    assert r.status_code == 403 and "bad signature" in r.json()["info"]
    expired = signer.sign(f"/media/images/{ids[0]}", 60, now=time.time() - 120)
    r = http.get(expired)
    assert r.status_code == 403 and "expired" in r.json()["info"]
    # A signature made with another secret is refused.
    other = Signer(b"x" * 32).sign(f"/media/images/{ids[0]}", 60)
    assert http.get(other).status_code == 403


def test_cors(gateway) -> None:
    server, http, _, ids = gateway
    url = _signer(server).sign(f"/media/images/{ids[0]}", 60)
    r = http.get(url, headers={"Origin": ALLOWED})
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == ALLOWED
    assert "ETag" in r.headers["access-control-expose-headers"]
    r = http.get(url, headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in r.headers
    pre = {"Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "range"}
    r = http.options(f"/media/images/{ids[0]}", headers={"Origin": ALLOWED, **pre})
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == ALLOWED
    r = http.options(f"/media/images/{ids[0]}", headers={"Origin": "http://evil.example", **pre})
    assert r.status_code == 400 and "access-control-allow-origin" not in r.headers


def test_no_origin_by_default_and_dev_allows_all(lensdb_server_factory) -> None:
    plain = lensdb_server_factory(name="plain")
    add_images(plain.connector(), 1, "plain", boxes=False)
    uid = uniqueids(plain.connector(), {"dataset": ["==", "plain"]})[0]
    url = _signer(plain).sign(f"/media/images/{uid}", 60)
    r = httpx.get(f"http://127.0.0.1:{plain.http_port}{url}", headers={"Origin": ALLOWED})
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
    assert "no CORS origin allowed" in plain.log()
    dev = lensdb_server_factory("--dev", name="dev")
    add_images(dev.connector(), 1, "dev", boxes=False)
    uid = uniqueids(dev.connector(), {"dataset": ["==", "dev"]})[0]
    url = _signer(dev).sign(f"/media/images/{uid}", 60)
    r = httpx.get(
        f"http://127.0.0.1:{dev.http_port}{url}", headers={"Origin": "http://anything.example"}
    )
    assert r.headers["access-control-allow-origin"] == "*"
    assert "development mode" in dev.log() and "(*)" in dev.log()


def test_cors_origin_option_reaches_the_gateway(lensdb_server_factory) -> None:
    # `lensdb serve` passes its settings to the gateway (it used to write them into os.environ).
    server = lensdb_server_factory(
        "--cors-origin",
        ALLOWED + "/",
        name="opt",
        env={"LENSDB_CORS_ORIGINS": "http://from-env.example"},
    )
    add_images(server.connector(), 1, "opt", boxes=False)
    uid = uniqueids(server.connector(), {"dataset": ["==", "opt"]})[0]
    url = f"http://127.0.0.1:{server.http_port}" + _signer(server).sign(f"/media/images/{uid}", 60)
    assert (
        httpx.get(url, headers={"Origin": ALLOWED}).headers["access-control-allow-origin"]
        == ALLOWED
    )
    r = httpx.get(url, headers={"Origin": "http://from-env.example"})
    assert "access-control-allow-origin" not in r.headers  # the option wins over the environment


def test_task_lists(gateway) -> None:
    server, http, token, ids = gateway
    assert http.get("/labelstudio/tasks").status_code == 401
    r = http.get(
        "/labelstudio/tasks",
        headers=_auth(token),
        params={
            "constraints": '{"dataset": ["==", "gw"]}',
            "predictions": "true",
            "properties": "guid",
        },
    )
    assert r.status_code == 200, r.text
    tasks = r.json()
    assert len(tasks) == 3 and all("sig=" in t["data"]["image"] for t in tasks)
    assert all(t["data"]["guid"].startswith("gw-") and t["predictions"] for t in tasks)
    csv_text = http.get(
        "/labelstudio/tasks",
        headers=_auth(token),
        params={"constraints": '{"dataset": ["==", "gw"]}', "format": "csv"},
    ).text
    assert csv_text.splitlines()[0].startswith("image") and len(csv_text.splitlines()) == 4
    r = http.post(
        "/labelstudio/tasks", headers=_auth(token), json={"uniqueids": ids[:2], "properties": None}
    )
    assert r.status_code == 200 and len(r.json()) == 2
    # Parameters of the wrong kind are refused with 400 and a reason, never a server error.
    for bad in (
        {"properties": 5},
        {"properties": [1]},
        {"label_config": {"x": 1}},
        {"strict": "maybe"},
        {"ttl": 10**12},
        {"base_url": "ftp://x"},
        {"constraints": "{not json"},
        {"uniqueids": "2.0.1"},
        {"limit": "many"},
        {"format": "xml"},
    ):
        r = http.post("/labelstudio/tasks", headers=_auth(token), json=bad)
        assert r.status_code == 400 and r.json()["status"] == -1 and r.json()["info"], (bad, r.text)
    assert http.post("/labelstudio/tasks", headers=_auth(token), content=b"[1]").status_code == 400


def test_openapi_documents_every_route_parameter(gateway) -> None:
    _, http, _, _ = gateway
    doc = http.get("/openapi.json").json()
    for path, ops in doc["paths"].items():
        templated = set(re.findall(r"{(\w+)}", path))
        for method, op in ops.items():
            declared = {
                p["name"] for p in op.get("parameters", []) if p["in"] == "path" and p["required"]
            }
            assert declared == templated, (method, path)
            assert "200" in op["responses"], (method, path)


def _read_response(f, head: bool = False) -> tuple[bytes, dict[str, str], bytes]:
    """One HTTP/1.1 response from a socket file: status line, headers, body (none for HEAD)."""
    status = f.readline()
    headers = {}
    while (line := f.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    body = b"" if head else f.read(int(headers.get("content-length", "0")))
    return status, headers, body


def test_headers_and_body_leave_together_in_order(gateway) -> None:
    # A response's header block waits for its body (server/onewrite.py): pipelined requests,
    # a HEAD (no body follows) and 100-continue (sent before the body is read) keep working.
    server, http, _, ids = gateway
    link = _signer(server).sign(f"/media/images/{ids[0]}", 60)
    whole = http.get(link).content
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=10) as sock:
        f = sock.makefile("rb")
        sock.sendall(
            f"HEAD {link} HTTP/1.1\r\nHost: x\r\n\r\n"
            f"GET {link} HTTP/1.1\r\nHost: x\r\nRange: bytes=0-9\r\n\r\n"
            f"GET {link} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        )
        status, headers, _ = _read_response(f, head=True)
        assert status.startswith(b"HTTP/1.1 200") and headers["content-length"] == str(len(whole))
        status, _, body = _read_response(f)
        assert status.startswith(b"HTTP/1.1 206") and body == whole[:10]
        status, _, body = _read_response(f)
        assert status.startswith(b"HTTP/1.1 200") and body == whole
        query = b'[{"FindImage": {"results": {"count": true}}}]'
        sock.sendall(
            b"POST /api/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(query)
        )
        assert f.readline().startswith(b"HTTP/1.1 100") and f.readline() == b"\r\n"
        sock.sendall(query)
        status, _, body = _read_response(f)
        assert status.startswith(b"HTTP/1.1 200") and b"Authenticate" in body  # needs a login
