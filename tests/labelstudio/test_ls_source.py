"""lensdb as Label Studio source storage: sync, predictions, idempotence, the image proxy, Check Connection."""

from __future__ import annotations

import json
import random

import pytest

from .conftest import LabelStudio, jpeg_bytes
from .datasets import LABEL_CONFIG, load_images


@pytest.fixture(scope="module")
def synced(label_studio: LabelStudio, ls_lensdb):
    """300 images in lensdb, a project whose lensdb storage selects 200 of them, synced once."""
    db = ls_lensdb.connector(use_ssl=False)
    tag, images = load_images(db, 300, 200)
    project = label_studio.create_project("source sync", LABEL_CONFIG)
    storage = label_studio.add_source(
        project,
        constraints=json.dumps({"dataset": ["==", tag], "split": ["==", "selected"]}),
        task_data_properties="name, caption",
    )
    result = label_studio.sync_source(storage["id"])
    return {
        "db": db,
        "tag": tag,
        "images": images,
        "project": project,
        "storage": storage,
        "sync": result,
    }


def test_sync_creates_one_task_per_selected_image_with_predictions(
    label_studio: LabelStudio, synced
):
    assert synced["sync"]["status"] == "completed", synced["sync"]
    assert synced["sync"]["last_sync_count"] == 200
    tasks = label_studio.tasks(synced["project"])
    assert len(tasks) == 200
    by_name = {img.name: img for img in synced["images"]}
    assert {t["data"]["name"] for t in tasks} == {
        img.name for img in synced["images"] if img.selected
    }
    for task in tasks:
        img = by_name[task["data"]["name"]]
        assert task["data"]["caption"] == f"caption of {img.name}"
        assert len(task["predictions"]) == 1
        result = task["predictions"][0]["result"]
        rects = [r for r in result if r["type"] == "rectanglelabels"]
        polys = [r for r in result if r["type"] == "polygonlabels"]
        assert len(rects) == 2 and len(polys) == 1
        expected = sorted(
            (
                b["label"],
                100 * b["x"] / img.width,
                100 * b["y"] / img.height,
                100 * b["width"] / img.width,
                100 * b["height"] / img.height,
            )
            for b in img.boxes
        )
        got = sorted(
            (
                r["value"]["rectanglelabels"][0],
                r["value"]["x"],
                r["value"]["y"],
                r["value"]["width"],
                r["value"]["height"],
            )
            for r in rects
        )
        for e, g in zip(expected, got, strict=True):
            assert e[0] == g[0]
            assert all(abs(a - b) <= 0.01 for a, b in zip(e[1:], g[1:], strict=True)), (e, g)
        for r in rects:
            assert r["from_name"] == "box" and r["to_name"] == "image"
            assert r["original_width"] == img.width and r["original_height"] == img.height
            assert (
                r["readonly"] is False
            )  # annotators correct model boxes unless the storage says otherwise
        pts = polys[0]["value"]["points"]
        want = [[100 * x / img.width, 100 * y / img.height] for x, y in img.polygons[0]["points"]]
        assert len(pts) == len(want)
        assert all(
            abs(a - b) <= 0.01
            for p, q in zip(pts, want, strict=True)
            for a, b in zip(p, q, strict=True)
        )
        assert polys[0]["value"]["polygonlabels"] == ["Road"]


def test_read_only_predictions_are_an_option(label_studio: LabelStudio, synced):
    project = label_studio.create_project("read-only predictions", LABEL_CONFIG)
    storage = label_studio.add_source(
        project,
        constraints=json.dumps({"dataset": ["==", synced["tag"]]}),
        limit=2,
        predictions_readonly=True,
    )
    assert storage["predictions_readonly"] is True
    label_studio.sync_source(storage["id"])
    results = [r for t in label_studio.tasks(project) for r in t["predictions"][0]["result"]]
    assert len(results) == 6 and all(r["readonly"] is True for r in results)
    default = label_studio.add_source(project, title="default")
    assert default["predictions_readonly"] is False


def test_resync_adds_only_new_images(label_studio: LabelStudio, synced):
    again = label_studio.sync_source(synced["storage"]["id"])
    assert again["status"] == "completed"
    assert again["last_sync_count"] == 0
    assert again["meta"]["tasks_existed"] == 200
    assert len(label_studio.tasks(synced["project"])) == 200
    # Three more images matching the constraints appear in the database: only they are added.
    db = synced["db"]
    for i in range(3):
        r, _ = db.query(
            [
                {
                    "AddImage": {
                        "properties": {
                            "name": f"late-{i}",
                            "dataset": synced["tag"],
                            "split": "selected",
                            "width": 40,
                            "height": 30,
                        }
                    }
                }
            ],
            [jpeg_bytes(40, 30, 999 + i)],
        )
        assert r[0]["AddImage"]["status"] == 0
    third = label_studio.sync_source(synced["storage"]["id"])
    assert third["last_sync_count"] == 3
    names = [t["data"]["name"] for t in label_studio.tasks(synced["project"])]
    assert len(names) == 203 and len(set(names)) == 203


def test_images_through_the_resolve_proxy_are_byte_identical(label_studio: LabelStudio, synced):
    tasks = label_studio.tasks(synced["project"])
    by_name = {img.name: img for img in synced["images"]}
    sample = random.Random(1).sample([t for t in tasks if t["data"]["name"] in by_name], 25)
    for task in sample:
        url = task["data"]["image"]
        assert url.startswith(f"/tasks/{task['id']}/resolve/?fileuri="), url
        r = label_studio.api("GET", url, 200)
        assert r.headers["Content-Type"] == "image/jpeg"
        assert r.content == by_name[task["data"]["name"]].data
    # Label Studio's own login guards the images.
    import requests

    anonymous = requests.get(
        label_studio.url + sample[0]["data"]["image"], timeout=30, allow_redirects=False
    )
    assert anonymous.status_code in (401, 403, 302)


def test_labels_missing_from_the_config_are_reported(label_studio: LabelStudio, ls_lensdb):
    db = ls_lensdb.connector(use_ssl=False)
    tag, _ = load_images(db, 4, 4, seed=11, labels=["Zebra"])
    project = label_studio.create_project("unknown labels", LABEL_CONFIG)
    storage = label_studio.add_source(project, constraints=json.dumps({"dataset": ["==", tag]}))
    result = label_studio.sync_source(storage["id"])
    assert result["status"] == "completed_with_errors"
    assert "Zebra (8)" in result["traceback"]
    assert result["last_sync_count"] == 4
    for task in label_studio.tasks(project):  # the polygons are still there
        assert [r["type"] for r in task["predictions"][0]["result"]] == ["polygonlabels"]


def test_check_connection_speaks_plainly(label_studio: LabelStudio, synced):
    project = synced["project"]

    def check(field: str, **fields) -> str:
        """The 400's message, which names the field (Label Studio shows `detail` as a short notice)."""
        r = label_studio.api(
            "POST",
            "/api/storages/lensdb/validate",
            json=label_studio.storage_body(project, **fields),
        )
        assert r.status_code == 400, r.text
        body = r.json()
        assert body["display_context"]["field"] == field, body
        assert "validation_errors" not in body, (
            body
        )  # those open Label Studio's "Runtime error" modal
        return body["detail"]

    assert "Password: The server at" in check("password", password="wrong")
    assert "refused the login" in check("token", password="", token="not-a-token")
    assert "Port: Nothing is listening" in check("port", port=1)
    assert "could not be resolved" in check("hostname", hostname="no-such-host.invalid")
    assert "not valid JSON" in check("constraints", constraints="{split: selected}")
    assert "must be a list" in check("constraints", constraints=json.dumps({"split": "selected"}))
    assert "refused the image constraints" in check(
        "constraints", constraints=json.dumps({"split": ["~~", 1]})
    )
    assert "Use TLS" in check(
        "use_ssl", use_ssl=True
    )  # the test server's TCP port takes TLS, but not this cert
    # A selection of no image is worth a warning before anyone syncs it.
    assert "no image" in check(
        "constraints", constraints=json.dumps({"split": ["==", "no-such-split"]})
    )
    # A good one says what a sync would bring.
    selected = json.dumps({"dataset": ["==", synced["tag"]], "split": ["==", "selected"]})
    ok = label_studio.api(
        "POST",
        "/api/storages/lensdb/validate",
        json=label_studio.storage_body(project, constraints=selected),
    )
    assert ok.status_code == 200, ok.text
    # What lensdb holds for that selection, counted with the SDK (other tests add images to the set).
    r, _ = synced["db"].query(
        [
            {
                "FindImage": {
                    "_ref": 1,
                    "blobs": False,
                    "constraints": json.loads(selected),
                    "results": {"count": True},
                }
            },
            {"FindBoundingBox": {"image_ref": 1, "blobs": False, "results": {"count": True}}},
            {"FindPolygon": {"image_ref": 1, "blobs": False, "results": {"count": True}}},
        ]
    )
    n, boxes, polys = (
        r[i][c]["count"] for i, c in enumerate(["FindImage", "FindBoundingBox", "FindPolygon"])
    )
    assert n >= 200 and boxes >= 400 and polys >= 200
    assert (ok.json()["images"], ok.json()["boxes"], ok.json()["polygons"]) == (n, boxes, polys), (
        ok.json()
    )
    assert f"bring {n} image(s) with {boxes + polys} model region(s)" in ok.json()["detail"]
    limited = label_studio.api(
        "POST",
        "/api/storages/lensdb/validate",
        json=label_studio.storage_body(project, constraints=selected, limit=2),
    ).json()
    assert limited["images"] == 2 and limited["images_matching"] == n, limited


def test_guid_property_keys_tasks_and_jpeg_conversion(label_studio: LabelStudio, ls_lensdb):
    import io
    import uuid

    from PIL import Image

    db = ls_lensdb.connector(use_ssl=False)
    tag = uuid.uuid4().hex[:8]
    for i in range(3):
        buf = io.BytesIO()
        Image.new("RGB", (20 + i, 10), (i * 50, 100, 200)).save(buf, "PNG")
        r, _ = db.query(
            [
                {
                    "AddImage": {
                        "properties": {
                            "guid": f"{tag}-{i}",
                            "dataset": tag,
                            "width": 20 + i,
                            "height": 10,
                        }
                    }
                }
            ],
            [buf.getvalue()],
        )
        assert r[0]["AddImage"]["status"] == 0
    project = label_studio.create_project("guid and jpeg", LABEL_CONFIG)
    storage = label_studio.add_source(
        project,
        constraints=json.dumps({"dataset": ["==", tag]}),
        guid_property="guid",
        as_format_jpg=True,
    )
    assert label_studio.sync_source(storage["id"])["last_sync_count"] == 3
    tasks = label_studio.tasks(project)
    assert sorted(t["storage_filename"] for t in tasks) == [f"{tag}-{i}" for i in range(3)]
    r = label_studio.api("GET", tasks[0]["data"]["image"], 200)
    assert r.headers["Content-Type"] == "image/jpeg" and r.content[:3] == b"\xff\xd8\xff"
    again = label_studio.sync_source(storage["id"])
    assert again["last_sync_count"] == 0 and again["meta"]["tasks_existed"] == 3


def test_images_without_size_properties_get_predictions(label_studio: LabelStudio, ls_lensdb):
    """The size comes from the image header, and is stored so the next sync need not read the bytes."""
    import uuid

    db = ls_lensdb.connector(use_ssl=False)
    tag = uuid.uuid4().hex[:8]
    r, _ = db.query(
        [
            {"AddImage": {"_ref": 1, "properties": {"dataset": tag, "name": f"{tag}-a"}}},
            {
                "AddBoundingBox": {
                    "image_ref": 1,
                    "label": "Cat",
                    "rectangle": {"x": 8, "y": 6, "width": 16, "height": 12},
                }
            },
        ],
        [jpeg_bytes(80, 60, 5)],
    )
    assert all(next(iter(c.values()))["status"] == 0 for c in r), r
    project = label_studio.create_project("sizeless", LABEL_CONFIG)
    storage = label_studio.add_source(project, constraints=json.dumps({"dataset": ["==", tag]}))
    synced = label_studio.sync_source(storage["id"])
    assert synced["status"] == "completed", synced
    (task,) = label_studio.tasks(project)
    assert task["meta"]["lensdb"]["width"] == 80 and task["meta"]["lensdb"]["height"] == 60
    (pred,) = task["predictions"][0]["result"]
    assert (pred["value"]["x"], pred["value"]["y"], pred["value"]["width"]) == (10.0, 10.0, 20.0)
    r, _ = db.query(
        [
            {
                "FindImage": {
                    "constraints": {"dataset": ["==", tag]},
                    "blobs": False,
                    "results": {"list": ["width", "height"]},
                }
            }
        ]
    )
    assert r[0]["FindImage"]["entities"] == [{"width": 80, "height": 60}]


def test_image_proxy_ranges(label_studio: LabelStudio, synced):
    """Label Studio's resolve proxy serves byte ranges of lensdb images (the plugin uses media.parse_range)."""
    task = label_studio.tasks(synced["project"])[0]
    url = task["data"]["image"]
    whole = label_studio.api("GET", url, 200).content
    assert whole[:3] == b"\xff\xd8\xff"
    first = label_studio.api("GET", url, 206, headers={"Range": "bytes=0-99"})
    assert (
        first.content == whole[:100]
        and first.headers["Content-Range"] == f"bytes 0-99/{len(whole)}"
    )
    tail = label_studio.api("GET", url, 206, headers={"Range": "bytes=100-"})
    assert tail.content == whole[100:]
    # Label Studio's proxy turns a suffix range into "bytes=0-" before the storage sees it, so the
    # whole image comes back (the parser's suffix rule is tested in tests/test_media.py).
    assert label_studio.api("GET", url, 200, headers={"Range": "bytes=-50"}).content == whole
