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


@pytest.fixture(scope="module", params=["moto_server", "ceph_rgw"])
def server(request, postgres_cluster, tmp_path_factory):
    s3 = request.getfixturevalue(request.param)
    url = postgres_cluster.new_database()
    bucket = s3.new_bucket()
    s = LensdbServer(
        tmp_path_factory.mktemp("gw-s3") / "state",
        url=url,
        blobs=f"s3://{bucket}/media",
        env=s3.env(),
    ).start()
    yield s
    s.stop()
    postgres_cluster.drop(url)


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
