"""lensdb as Label Studio target storage: every save, update and delete lands in the database, nothing is lost."""

from __future__ import annotations

import json

import pytest

from lensdb.labelstudio.annotations import parse_time

from .conftest import USER, LabelStudio, wait_until
from .datasets import LABEL_CONFIG, load_images


def box(
    rid: str,
    x: float,
    y: float,
    w: float,
    h: float,
    label: str = "Cat",
    rotation: float = 0,
    size=(64, 48),
):
    return {
        "id": rid,
        "type": "rectanglelabels",
        "from_name": "box",
        "to_name": "image",
        "original_width": size[0],
        "original_height": size[1],
        "image_rotation": 0,
        "value": {
            "x": x,
            "y": y,
            "width": w,
            "height": h,
            "rotation": rotation,
            "rectanglelabels": [label],
        },
    }


def polygon(rid: str, points: list[list[float]], size=(64, 48)):
    return {
        "id": rid,
        "type": "polygonlabels",
        "from_name": "poly",
        "to_name": "image",
        "original_width": size[0],
        "original_height": size[1],
        "image_rotation": 0,
        "value": {"points": points, "closed": True, "polygonlabels": ["Road"]},
    }


def keypoint(rid: str, x: float, y: float, size=(64, 48)):
    return {
        "id": rid,
        "type": "keypointlabels",
        "from_name": "kp",
        "to_name": "image",
        "original_width": size[0],
        "original_height": size[1],
        "image_rotation": 0,
        "value": {"x": x, "y": y, "width": 1, "keypointlabels": ["Nose"]},
    }


def choice(value: str):
    return {
        "id": "weather1",
        "type": "choices",
        "from_name": "weather",
        "to_name": "image",
        "value": {"choices": [value]},
    }


def text(value: str):
    return {
        "id": "note1",
        "type": "textarea",
        "from_name": "note",
        "to_name": "image",
        "value": {"text": [value]},
    }


def sent(db, ann: dict, project_id: int, timeout: float = 30.0) -> dict:
    """What the database holds once the plugin's sender wrote this version of the annotation (a
    save returns before it is sent: the outbox row is committed with it, the send follows)."""
    want = parse_time(ann["updated_at"])

    def written() -> dict | None:
        s = stored(db, ann["id"], project_id)
        a = s["annotation"]
        return s if a is not None and parse_time(a.get("LS_updated_at")) == want else None

    got = wait_until(written, timeout=timeout)
    assert got, f"annotation {ann['id']} at {ann['updated_at']} never reached lensdb"
    return got


def removed(db, annotation_id: int, project_id: int, timeout: float = 30.0) -> dict:
    """What the database holds once the plugin's sender removed the annotation."""
    got = wait_until(
        lambda: (s := stored(db, annotation_id, project_id))["annotation"] is None and s,
        timeout=timeout,
    )
    assert got, f"annotation {annotation_id} still in lensdb"
    return got


def stored(db, annotation_id: int, project_id: int) -> dict:
    """What the database holds for one Label Studio annotation, read with the aperturedb SDK."""
    via = {"ref": 1, "connection_class": "LS_annotation_region"}
    response, _ = db.query(
        [
            {
                "FindEntity": {
                    "_ref": 1,
                    "with_class": "LS_annotation",
                    "results": {"all_properties": True},
                    "constraints": {
                        "LS_id": ["==", str(annotation_id)],
                        "LS_project_id": ["==", project_id],
                    },
                }
            },
            {
                "FindImage": {
                    "is_connected_to": {"ref": 1, "connection_class": "LS_annotation_image"},
                    "uniqueids": True,
                    "blobs": False,
                }
            },
            {
                "FindBoundingBox": {
                    "is_connected_to": via,
                    "coordinates": True,
                    "labels": True,
                    "blobs": False,
                    "results": {"all_properties": True},
                }
            },
            {
                "FindPolygon": {
                    "is_connected_to": via,
                    "vertices": True,
                    "labels": True,
                    "blobs": False,
                    "results": {"all_properties": True},
                }
            },
            {
                "FindEntity": {
                    "with_class": "LS_keypoint",
                    "is_connected_to": via,
                    "results": {"all_properties": True},
                }
            },
        ]
    )
    assert isinstance(response, list), response
    ents = [
        response[i][name].get("entities") or []
        for i, name in enumerate(
            ["FindEntity", "FindImage", "FindBoundingBox", "FindPolygon", "FindEntity"]
        )
    ]
    return {
        "annotation": ents[0][0] if ents[0] else None,
        "images": [e["_uniqueid"] for e in ents[1]],
        "boxes": {b["LS_id"]: b for b in ents[2]},
        "polygons": {p["LS_id"]: p for p in ents[3]},
        "keypoints": {k["LS_id"]: k for k in ents[4]},
    }


@pytest.fixture(scope="module")
def project(label_studio: LabelStudio, ls_lensdb):
    db = ls_lensdb.connector(use_ssl=False)
    tag, images = load_images(db, 6, 6, seed=21)
    pid = label_studio.create_project("target", LABEL_CONFIG)
    source = label_studio.add_source(
        pid, constraints=json.dumps({"dataset": ["==", tag]}), task_data_properties="name"
    )
    assert label_studio.sync_source(source["id"])["last_sync_count"] == 6
    target = label_studio.add_target(pid)
    tasks = label_studio.tasks(pid)
    by_name = {img.name: img for img in images}
    return {
        "id": pid,
        "target": target,
        "tasks": tasks,
        "images": [by_name[t["data"]["name"]] for t in tasks],
    }


def _size(img) -> tuple[int, int]:
    return img.width, img.height


def test_create_update_delete_reach_the_database(label_studio: LabelStudio, project, db):
    task, img = project["tasks"][0], project["images"][0]
    size = _size(img)
    result = [
        box("r1", 10, 20, 30, 40, size=size),
        box("r2", 50, 50, 20, 10, "Dog", rotation=30, size=size),
        polygon("p1", [[10, 10], [40, 10], [25, 40]], size=size),
    ]
    ann = label_studio.api(
        "POST", f"/api/tasks/{task['id']}/annotations/", 201, json={"result": result}
    ).json()

    s = sent(db, ann, project["id"])
    a = s["annotation"]
    assert a is not None
    assert a["LS_project_id"] == project["id"] and a["LS_task_id"] == task["id"]
    assert a["LS_completed_by"] == USER and a["LS_project_title"] == "target"
    assert len(a["LS_instance"]) == 32  # this Label Studio installation's id
    assert json.loads(a["LS_data"])["result"] == result
    assert s["images"] == [task["meta"]["lensdb"]["uniqueid"]]
    assert set(s["boxes"]) == {"r1", "r2"} and set(s["polygons"]) == {"p1"}
    r1 = s["boxes"]["r1"]
    assert r1["_label"] == "Cat"
    assert r1["_coordinates"] == {
        "x": round(0.10 * img.width),
        "y": round(0.20 * img.height),
        "width": round(0.30 * img.width),
        "height": round(0.40 * img.height),
    }
    assert (r1["LS_x"], r1["LS_y"], r1["LS_width"], r1["LS_height"]) == (10, 20, 30, 40)
    assert s["boxes"]["r2"]["LS_rotation"] == 30 and s["boxes"]["r2"]["_label"] == "Dog"
    verts = s["polygons"]["p1"]["_vertices"][0]
    want = [[x * img.width / 100, y * img.height / 100] for x, y in [[10, 10], [40, 10], [25, 40]]]
    assert all(
        abs(a - b) < 1e-6
        for p, q in zip(verts, want, strict=True)
        for a, b in zip(p, q, strict=True)
    )
    r1_uid, p1_uid = r1["_uniqueid"], s["polygons"]["p1"]["_uniqueid"]

    # Move a box, delete a region, add a polygon, a keypoint, a choice and a text.
    result = [
        box("r1", 15, 20, 30, 40, size=size),
        polygon("p1", [[10, 10], [40, 10], [25, 40]], size=size),
        polygon("p2", [[60, 60], [90, 60], [75, 90]], size=size),
        keypoint("k1", 50, 25, size=size),
        choice("Sunny"),
        text("two dogs, maybe"),
    ]
    ann = label_studio.api(
        "PATCH", f"/api/annotations/{ann['id']}/", 200, json={"result": result}
    ).json()
    s = sent(db, ann, project["id"])
    assert (
        set(s["boxes"]) == {"r1"}
        and set(s["polygons"]) == {"p1", "p2"}
        and set(s["keypoints"]) == {"k1"}
    )
    assert s["boxes"]["r1"]["_uniqueid"] == r1_uid  # updated in place
    assert (
        s["polygons"]["p1"]["_uniqueid"] == p1_uid
    )  # same shape: kept, not deleted and added again
    p2_uid = s["polygons"]["p2"]["_uniqueid"]
    assert s["boxes"]["r1"]["_coordinates"]["x"] == round(0.15 * img.width)
    k1 = s["keypoints"]["k1"]
    assert abs(k1["x"] - 0.5 * img.width) < 1e-6 and abs(k1["y"] - 0.25 * img.height) < 1e-6
    assert k1["label"] == "Nose"
    assert json.loads(s["annotation"]["LS_choices_weather"]) == ["Sunny"]
    assert s["annotation"]["LS_text_note"] == "two dogs, maybe"

    # Reshape p1: the query language cannot move vertices, so p1 is replaced; p2 stays as it was.
    reshaped = [
        r if r["id"] != "p1" else polygon("p1", [[12, 10], [40, 10], [25, 40]], size=size)
        for r in result
    ]
    ann = label_studio.api(
        "PATCH", f"/api/annotations/{ann['id']}/", 200, json={"result": reshaped}
    ).json()
    s = sent(db, ann, project["id"])
    assert set(s["polygons"]) == {"p1", "p2"} and s["polygons"]["p2"]["_uniqueid"] == p2_uid
    assert s["polygons"]["p1"]["_uniqueid"] != p1_uid
    assert abs(s["polygons"]["p1"]["_vertices"][0][0][0] - 0.12 * img.width) < 1e-6

    # Removing the choice removes its property; the rest stays.
    ann = label_studio.api(
        "PATCH", f"/api/annotations/{ann['id']}/", 200, json={"result": result[:-2] + [text("x")]}
    ).json()
    s = sent(db, ann, project["id"])
    assert "LS_choices_weather" not in s["annotation"] and s["annotation"]["LS_text_note"] == "x"

    # Model boxes (the predictions) are never touched by annotation writes.
    models, _ = db.query(
        [
            {"FindImage": {"_ref": 1, "constraints": {"_uniqueid": ["==", s["images"][0]]}}},
            {
                "FindBoundingBox": {
                    "image_ref": 1,
                    "constraints": {"LS_annotation": ["==", None]},
                    "results": {"count": True},
                }
            },
        ]
    )
    assert models[1]["FindBoundingBox"]["count"] == 2

    label_studio.api("DELETE", f"/api/annotations/{ann['id']}/", 204)
    s = removed(db, ann["id"], project["id"])
    assert s["annotation"] is None and not s["boxes"] and not s["polygons"] and not s["keypoints"]
    mine = {"LS_annotation": ["==", str(ann["id"])], "LS_project_id": ["==", project["id"]]}
    left, _ = db.query(
        [
            {"FindBoundingBox": {"constraints": mine, "results": {"count": True}}},
            {"FindPolygon": {"constraints": mine, "results": {"count": True}}},
        ]
    )
    assert left[0]["FindBoundingBox"]["count"] == 0 and left[1]["FindPolygon"]["count"] == 0


def _target(label_studio: LabelStudio, project) -> dict:
    return label_studio.api(
        "GET", f"/api/storages/export/lensdb/{project['target']['id']}", 200
    ).json()


def test_annotations_saved_while_lensdb_is_down_arrive_when_it_is_back(
    label_studio, project, ls_lensdb
):
    ls_lensdb.stop()
    ids = []
    try:
        for task, img in zip(project["tasks"][1:4], project["images"][1:4], strict=True):
            r = label_studio.api(
                "POST",
                f"/api/tasks/{task['id']}/annotations/",
                201,
                json={"result": [box("down", 5, 5, 10, 10, size=_size(img)), choice("Rainy")]},
            )
            ids.append(r.json()["id"])
        card = wait_until(  # the sender tries, fails, and says so on the card
            lambda: (c := _target(label_studio, project))["status"] == "failed" and c, timeout=30
        )
        assert card and card["backlog"] == 3 and "waiting" in card["traceback"]
        assert "Nothing is listening" in (card["last_error"] or "")
    finally:
        ls_lensdb.start()
    db = ls_lensdb.connector(use_ssl=False)
    assert wait_until(
        lambda: all(stored(db, i, project["id"])["annotation"] for i in ids), timeout=60
    ), label_studio.log()[-3000:]
    for i in ids:
        s = stored(db, i, project["id"])
        assert set(s["boxes"]) == {"down"} and json.loads(
            s["annotation"]["LS_choices_weather"]
        ) == ["Rainy"]
    card = wait_until(
        lambda: (c := _target(label_studio, project))["backlog"] == 0 and c, timeout=30
    )
    assert card and card["status"] == "completed"


def test_target_sync_reexports_what_the_database_lacks(label_studio, project, db):
    task, img = project["tasks"][4], project["images"][4]
    ann = label_studio.api(
        "POST",
        f"/api/tasks/{task['id']}/annotations/",
        201,
        json={"result": [box("gone", 1, 2, 3, 4, size=_size(img))]},
    ).json()
    assert sent(db, ann, project["id"])["annotation"] is not None
    from lensdb.labelstudio.queries import delete_annotation_query

    db.query(delete_annotation_query(ann["id"], project["id"]))
    assert stored(db, ann["id"], project["id"])["annotation"] is None
    card = label_studio.api(
        "POST", f"/api/storages/export/lensdb/{project['target']['id']}/sync", 200
    ).json()
    assert card["status"] == "completed", card
    s = stored(db, ann["id"], project["id"])
    assert s["annotation"] is not None and set(s["boxes"]) == {"gone"}


def test_exported_annotations_come_back_on_resync(label_studio: LabelStudio, ls_lensdb, db):
    tag, images = load_images(db, 2, 2, seed=31)
    pid = label_studio.create_project("restore", LABEL_CONFIG)
    source = label_studio.add_source(
        pid, constraints=json.dumps({"dataset": ["==", tag]}), task_data_properties="name"
    )
    label_studio.sync_source(source["id"])
    target = label_studio.add_target(pid)
    task = label_studio.tasks(pid)[0]
    img = next(i for i in images if i.name == task["data"]["name"])
    result = [box("keep", 10, 10, 20, 20, size=_size(img)), choice("Sunny")]
    ann = label_studio.api(
        "POST", f"/api/tasks/{task['id']}/annotations/", 201, json={"result": result}
    ).json()
    sent(db, ann, pid)
    # Without the target storage, deleting the task leaves the database alone; a re-sync brings it back.
    label_studio.api("DELETE", f"/api/storages/export/lensdb/{target['id']}", 204)
    label_studio.api("DELETE", f"/api/tasks/{task['id']}/", 204)
    assert label_studio.sync_source(source["id"])["last_sync_count"] == 1
    again = next(t for t in label_studio.tasks(pid) if t["data"]["name"] == img.name)
    assert again["id"] != task["id"] and len(again["annotations"]) == 1
    restored = again["annotations"][0]
    assert restored["result"] == result
    s = stored(db, restored["id"], pid)  # the stored copy now carries the new annotation id
    assert s["annotation"] is not None and s["annotation"]["LS_task_id"] == again["id"]
    assert set(s["boxes"]) == {"keep"} and stored(db, ann["id"], pid)["annotation"] is None
