"""A lensdb server with a small labelled data set for the browse page tests.

Data (Label Studio layer's model, see lensdb.labelstudio.queries): ten images, seven in dataset
"alpha" and three in "beta". The first alpha image carries a human annotation (an LS_annotation
entity, a "cat" box and a "nose" keypoint carrying LS_annotation) and two predictions (a "dog"
box, a "tree" polygon); the second has one predicted "cat" box.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import pytest
from PIL import Image

from conftest import LensdbServer

BACKGROUND = (40, 60, 90)
HUMAN_BOX = {"x": 40, "y": 30, "width": 120, "height": 90}
PRED_BOX = {"x": 170, "y": 110, "width": 110, "height": 80}
PRED_POLYGON = [[200, 20], [300, 30], [260, 90]]
KEYPOINT = (60, 190)
ANNOTATION = {
    "LS_id": "11",
    "LS_project_id": 3,
    "LS_project_title": "Pets",
    "LS_task_id": 42,
    "LS_completed_by": "ann@example.com",
    "LS_updated_by": "bob@example.com",
    "LS_created_at": {"_date": "2026-01-02T03:04:05+00:00"},
    "LS_updated_at": {"_date": "2026-01-03T03:04:05+00:00"},
}
LS_URL = "http://labelstudio.example:8080"


def png(width: int, height: int, colour=BACKGROUND) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, "PNG")
    return out.getvalue()


@dataclass
class Browsed:
    server: LensdbServer
    uids: list[str]  # in insertion order
    datasets: dict[str, str]  # uid -> dataset

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.http_port}"


def load(server: LensdbServer) -> Browsed:
    db = server.connector()
    datasets = ["alpha"] * 7 + ["beta"] * 3
    q = [
        {"AddImage": {"properties": {"dataset": d, "name": f"img{i}"}}}
        for i, d in enumerate(datasets)
    ]
    r, _ = db.query(q, [png(320, 240) for _ in datasets])
    assert all(item["AddImage"]["status"] == 0 for item in r), r
    r, _ = db.query(
        [{"FindImage": {"uniqueids": True, "blobs": False, "results": {"list": ["name"]}}}]
    )
    found = sorted(r[0]["FindImage"]["entities"], key=lambda e: int(e["name"][3:]))
    uids = [e["_uniqueid"] for e in found]
    first = {"_uniqueid": ["==", uids[0]]}
    r, _ = db.query(
        [
            {"FindImage": {"_ref": 1, "blobs": False, "constraints": first}},
            {
                "AddEntity": {
                    "_ref": 2,
                    "class": "LS_annotation",
                    "properties": ANNOTATION,
                    "connect": {"ref": 1, "class": "LS_annotation_image"},
                }
            },
            {
                "AddBoundingBox": {
                    "image_ref": 1,
                    "rectangle": HUMAN_BOX,
                    "label": "cat",
                    "properties": {"LS_annotation": "11", "LS_id": "r1"},
                }
            },
            {
                "AddBoundingBox": {
                    "image_ref": 1,
                    "rectangle": PRED_BOX,
                    "label": "dog",
                    "properties": {"score": 0.9},
                }
            },
            {"AddPolygon": {"image_ref": 1, "polygons": [PRED_POLYGON], "label": "tree"}},
            {
                "AddEntity": {
                    "class": "LS_keypoint",
                    "properties": {
                        "x": KEYPOINT[0],
                        "y": KEYPOINT[1],
                        "label": "nose",
                        "LS_annotation": "11",
                    },
                    "connect": {"ref": 1, "class": "LS_keypoint_image"},
                }
            },
            {
                "FindImage": {
                    "_ref": 3,
                    "blobs": False,
                    "constraints": {"_uniqueid": ["==", uids[1]]},
                }
            },
            {
                "AddBoundingBox": {
                    "image_ref": 3,
                    "rectangle": {"x": 10, "y": 10, "width": 50, "height": 50},
                    "label": "cat",
                }
            },
        ]
    )
    assert all(list(item.values())[0]["status"] == 0 for item in r), r
    return Browsed(server, uids, dict(zip(uids, datasets, strict=True)))


@pytest.fixture(scope="module", params=["sqlite", "postgres-s3"])
def browsed(request: pytest.FixtureRequest, lensdb_module_server_factory) -> Browsed:
    """The data set on a server of each backend (the browser test takes the embedded one)."""
    env = {"LABEL_STUDIO_URL": LS_URL}
    if request.param == "sqlite":
        return load(lensdb_module_server_factory(env=env))
    cluster = request.getfixturevalue("postgres_cluster")
    s3 = request.getfixturevalue("moto_server")
    server = lensdb_module_server_factory(
        name="pg",
        env={**env, **s3.env()},
        url=cluster.new_database(),
        blobs=f"s3://{s3.new_bucket()}/lensdb",
    )
    return load(server)


@pytest.fixture(scope="module")
def browsed_dev(lensdb_module_server_factory) -> Browsed:
    server = lensdb_module_server_factory("--dev", name="dev")
    return load(server)


@pytest.fixture(scope="module")
def browsed_embedded(lensdb_module_server_factory) -> Browsed:
    """The data set on an embedded server only (the Chromium test: one backend is enough there)."""
    return load(lensdb_module_server_factory(env={"LABEL_STUDIO_URL": LS_URL}))
