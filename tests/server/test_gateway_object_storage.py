"""The media gateway on PostgreSQL + S3 (moto's server, and Ceph's RGW): images that share one
pack object are each served whole and by range, with ETags and 304s, and a deleted image is
gone at once."""

from __future__ import annotations

from io import BytesIO

import httpx
import pytest
from PIL import Image

from conftest import LensdbServer
from connector.helpers import session_token


def _serve(request, postgres_cluster, tmp_path_factory, *args: str):
    """A server on a new PostgreSQL database and a new bucket of the parametrised S3 endpoint,
    with the endpoint's address (stopped and dropped when done)."""
    s3 = request.getfixturevalue(request.param)
    url = postgres_cluster.new_database()
    s = LensdbServer(
        tmp_path_factory.mktemp("gw-s3") / "state",
        url=url,
        blobs=f"s3://{s3.new_bucket()}/media",
        env=s3.env(),
        args=list(args),
    ).start()
    yield s, s3.endpoint
    s.stop()
    postgres_cluster.drop(url)


@pytest.fixture(scope="module", params=["moto_server", "ceph_rgw"])
def server(request, postgres_cluster, tmp_path_factory):
    for s, _ in _serve(request, postgres_cluster, tmp_path_factory):
        yield s


def _jpeg(seed: int) -> bytes:
    out = BytesIO()
    Image.effect_noise((64, 48), 30 + seed).convert("RGB").save(out, "JPEG", quality=90)
    return out.getvalue()


def test_images_in_one_pack_are_served_whole_and_by_range(server: LensdbServer) -> None:
    images = [_jpeg(i) for i in range(3)]
    client = server.connector()
    client.query(
        [{"AddImage": {"properties": {"set": "s3gw", "n": i}}} for i in range(3)], images
    )  # one query: one pack object holding the three
    r, _ = client.query(
        [
            {
                "FindImage": {
                    "constraints": {"set": ["==", "s3gw"]},
                    "blobs": False,
                    "results": {"list": ["n", "_uniqueid"], "sort": "n"},
                }
            }
        ]
    )
    uids = [e["_uniqueid"] for e in r[0]["FindImage"]["entities"]]
    auth = {"Authorization": f"Bearer {session_token(server)}"}
    with httpx.Client(base_url=f"http://127.0.0.1:{server.http_port}", headers=auth) as http:
        for uid, data in zip(uids, images, strict=True):
            whole = http.get(f"/media/images/{uid}")
            assert whole.status_code == 200 and whole.content == data
            assert whole.headers["content-type"] == "image/jpeg"
            etag = whole.headers["etag"]
            part = http.get(f"/media/images/{uid}", headers={"Range": "bytes=100-299"})
            assert part.status_code == 206 and part.content == data[100:300]
            assert part.headers["content-range"] == f"bytes 100-299/{len(data)}"
            tail = http.get(f"/media/images/{uid}", headers={"Range": "bytes=-50"})
            assert tail.content == data[-50:]
            assert (
                http.get(f"/media/images/{uid}", headers={"If-None-Match": etag}).status_code == 304
            )
            bad = http.get(f"/media/images/{uid}", headers={"Range": f"bytes={len(data) + 5}-"})
            assert bad.status_code == 416
        client.query(
            [
                {"FindImage": {"_ref": 1, "constraints": {"n": ["==", 1]}, "blobs": False}},
                {"DeleteImage": {"ref": 1}},
            ]
        )
        assert http.get(f"/media/images/{uids[1]}").status_code == 404
        assert http.get(f"/media/images/{uids[2]}").content == images[2]
        # An id of another kind of object, or none at all, is not an image.
        assert http.get("/media/images/1.0.1").status_code == 404
        assert http.get("/media/images/not-an-id").status_code == 404


@pytest.fixture(scope="module", params=["moto_server", "ceph_rgw"])
def redirecting(request, postgres_cluster, tmp_path_factory):
    """A server started with --media-redirect, and its S3 endpoint."""
    yield from _serve(request, postgres_cluster, tmp_path_factory, "--media-redirect")


def test_media_redirect_sends_whole_objects_to_the_store_and_serves_shared_ones(redirecting):
    """--media-redirect: an image or blob added alone (its own object) is answered with a 307
    to a presigned URL that the store serves, ranges included, without lensdb's credentials;
    images sharing one object are served by lensdb as without the option; access is checked
    before any redirect, and a deleted image has none."""
    server, endpoint = redirecting
    client = server.connector()
    alone, blob = _jpeg(7), b"\x00\x01plain bytes" * 500
    client.query([{"AddImage": {"properties": {"set": "redir", "n": 0}}}], [alone])
    client.query([{"AddBlob": {"properties": {"set": "redir", "n": 1}}}], [blob])
    shared = [_jpeg(8), _jpeg(9)]
    client.query(
        [{"AddImage": {"properties": {"set": "redir", "n": 2 + i}}} for i in range(2)], shared
    )
    found, _ = client.query(
        [
            {
                "FindImage": {
                    "constraints": {"set": ["==", "redir"]},
                    "blobs": False,
                    "results": {"list": ["n", "_uniqueid"], "sort": "n"},
                }
            },
            {
                "FindBlob": {
                    "constraints": {"set": ["==", "redir"]},
                    "blobs": False,
                    "results": {"list": ["_uniqueid"]},
                }
            },
        ]
    )
    images = [e["_uniqueid"] for e in found[0]["FindImage"]["entities"]]
    blob_uid = found[1]["FindBlob"]["entities"][0]["_uniqueid"]
    auth = {"Authorization": f"Bearer {session_token(server)}"}
    base = f"http://127.0.0.1:{server.http_port}"
    with httpx.Client(base_url=base, headers=auth) as http, httpx.Client() as anyone:
        moved = http.get(f"/media/images/{images[0]}")
        assert moved.status_code == 307, moved.text
        location = moved.headers["location"]
        assert location.startswith(endpoint) and moved.headers["cache-control"] == "no-store"
        direct = anyone.get(location)  # the store itself, no lensdb credentials
        assert direct.status_code == 200 and direct.content == alone
        assert direct.headers["content-type"] == "image/jpeg"
        part = anyone.get(location, headers={"Range": "bytes=10-109"})
        assert part.status_code == 206 and part.content == alone[10:110]
        followed = http.get(
            f"/media/images/{images[0]}", headers={"Range": "bytes=-40"}, follow_redirects=True
        )
        assert followed.status_code == 206 and followed.content == alone[-40:]
        etag = http.head(f"/media/images/{images[0]}").headers.get("etag")
        assert etag is None  # a redirect carries no ETag: the store's answer does
        moved_blob = http.get(f"/media/blobs/{blob_uid}")
        assert moved_blob.status_code == 307
        assert anyone.get(moved_blob.headers["location"]).content == blob
        for uid, data in zip(images[1:], shared, strict=True):  # one object holds both
            served = http.get(f"/media/images/{uid}")
            assert served.status_code == 200 and served.content == data
        assert anyone.get(f"{base}/media/images/{images[0]}").status_code == 401
        client.query(
            [
                {"FindImage": {"_ref": 1, "constraints": {"n": ["==", 0]}, "blobs": False}},
                {"DeleteImage": {"ref": 1}},
            ]
        )
        assert http.get(f"/media/images/{images[0]}").status_code == 404
    assert "Traceback" not in server.log()


def test_media_redirect_without_object_storage_is_refused_in_one_line(tmp_path):
    import os
    import subprocess
    import sys

    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from lensdb.cli import main; main()",
            "serve",
            "--data",
            str(tmp_path / "d"),
            "--media-redirect",
        ],
        env={**os.environ, "LENSDB_ADMIN_PASSWORD": "pw-for-the-test"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "--media-redirect needs blobs in object storage" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
