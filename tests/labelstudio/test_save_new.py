"""A save of an annotation lensdb does not hold yet (`new=True`, what `pull` sends for annotations it
did not find) leaves the database exactly as the full upsert does, and never duplicates a region when
another path saved the annotation in between. Run on the real engine, in-process."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

import lensdb
from lensdb.client import EmbeddedClient
from lensdb.labelstudio import annotations as A
from lensdb.labelstudio import queries as Q

CONFIG = """<View><Image name="image" value="$image"/>
<RectangleLabels name="label" toName="image"><Label value="Cat"/></RectangleLabels>
<PolygonLabels name="outline" toName="image"><Label value="Road"/></PolygonLabels>
<KeyPointLabels name="points" toName="image"><Label value="Nose"/></KeyPointLabels>
<Choices name="quality" toName="image"><Choice value="good"/></Choices></View>"""
PROJECT = {"id": 4, "title": "saves", "label_config": CONFIG}
SIZE = {"original_width": 200, "original_height": 100}
RESULT = [
    {"id": "b1", "from_name": "label", "to_name": "image", "type": "rectanglelabels", **SIZE,
     "value": {"x": 10.5, "y": 20, "width": 30, "height": 40, "rotation": 0, "rectanglelabels": ["Cat"]}},
    {"id": "p1", "from_name": "outline", "to_name": "image", "type": "polygonlabels", **SIZE,
     "value": {"points": [[1, 1], [50, 2], [20, 60]], "polygonlabels": ["Road"]}},
    {"id": "k1", "from_name": "points", "to_name": "image", "type": "keypointlabels", **SIZE,
     "value": {"x": 5, "y": 6, "width": 1, "keypointlabels": ["Nose"]}},
    {"id": "c1", "from_name": "quality", "to_name": "image", "type": "choices",
     "value": {"choices": ["good"]}},
]  # fmt: skip


def _database(folder: Path) -> tuple[EmbeddedClient, str]:
    db = EmbeddedClient(lensdb.Database(str(folder)))
    buf = io.BytesIO()
    Image.new("RGB", (200, 100), (10, 20, 30)).save(buf, "PNG")
    response, _ = db.query(
        [
            {"AddImage": {"_ref": 1, "properties": {"guid": "one"}}},
            {
                "FindImage": {
                    "constraints": {"guid": ["==", "one"]},
                    "results": {"list": ["_uniqueid"]},
                }
            },
        ],
        [buf.getvalue()],
    )
    (image,) = Q.entities(response, "FindImage")
    return db, image["_uniqueid"]


def _state(db: EmbeddedClient) -> dict:
    """Everything the save wrote, without ids that differ between databases."""
    skip = {"_uniqueid"}
    response, _ = db.query(
        [
            {"FindImage": {"_ref": 1, "blobs": False}},
            {"FindEntity": {"with_class": Q.ANNOTATION_CLASS, "is_connected_to": {"ref": 1},
                            "results": {"all_properties": True}}},
            {"FindBoundingBox": {"image_ref": 1, "blobs": False,
                                 "results": {"all_properties": True, "list": ["_coordinates"]}}},
            {"FindPolygon": {"image_ref": 1, "results": {"all_properties": True}}},
            {"FindEntity": {"with_class": Q.KEYPOINT_CLASS, "results": {"all_properties": True}}},
            {"FindEntity": {"_ref": 2, "with_class": Q.ANNOTATION_CLASS}},
            {"FindBoundingBox": {"is_connected_to": {"ref": 2, "connection_class": Q.ANNOTATION_REGION},
                                 "blobs": False, "results": {"count": True}}},
            {"FindPolygon": {"is_connected_to": {"ref": 2, "connection_class": Q.ANNOTATION_REGION},
                             "blobs": False, "results": {"count": True}}},
            {"FindEntity": {"with_class": Q.KEYPOINT_CLASS, "results": {"count": True},
                            "is_connected_to": {"ref": 2, "connection_class": Q.ANNOTATION_REGION}}},
        ]
    )  # fmt: skip

    def clean(items: list[dict]) -> list[dict]:
        return sorted(({k: v for k, v in e.items() if k not in skip} for e in items), key=repr)

    return {
        "annotations": clean(response[1]["FindEntity"]["entities"]),
        "boxes": clean(response[2]["FindBoundingBox"]["entities"]),
        "polygons": clean(response[3]["FindPolygon"]["entities"]),
        "keypoints": clean(response[4]["FindEntity"]["entities"]),
        "boxes_of_annotation": response[6]["FindBoundingBox"]["count"],
        "polygons_of_annotation": response[7]["FindPolygon"]["count"],
        "keypoints_of_annotation": response[8]["FindEntity"]["count"],
    }


def _save(db: EmbeddedClient, uid: str, new: bool) -> None:
    task = {"id": 3, "data": {}, "meta": {"lensdb": {"uniqueid": uid, "width": 200, "height": 100}}}
    ann = {"id": 9, "task": 3, "project": 4, "completed_by": 1, "result": RESULT,
           "created_at": "2026-11-27T10:00:00.000001Z", "updated_at": "2026-11-27T10:00:00.000002Z"}  # fmt: skip
    db.query(A.save_query(ann, task, PROJECT, {1: "ann@example.com"}, new=new))


def test_a_new_save_writes_what_the_full_upsert_writes(tmp_path: Path) -> None:
    full, uid_full = _database(tmp_path / "full")
    short, uid_short = _database(tmp_path / "short")
    _save(full, uid_full, new=False)
    _save(short, uid_short, new=True)
    got = _state(short)
    assert got == _state(full)
    assert (
        len(got["annotations"]) == 1 and got["annotations"][0]["LS_choices_quality"] == '["good"]'
    )
    assert len(got["boxes"]) == 1 and len(got["polygons"]) == 1 and len(got["keypoints"]) == 1
    assert got["boxes_of_annotation"] == got["polygons_of_annotation"] == 1
    assert got["keypoints_of_annotation"] == 1
    # Commands sent: the short form skips the updates and the removal of an earlier version's regions.
    task = {"id": 3, "data": {}, "meta": {"lensdb": {"uniqueid": uid_full}}}
    ann = {"id": 9, "task": 3, "project": 4, "result": RESULT}
    assert len(A.save_query(ann, task, PROJECT, new=True)) < len(A.save_query(ann, task, PROJECT))


def test_a_new_save_racing_an_earlier_one_duplicates_nothing(tmp_path: Path) -> None:
    db, uid = _database(tmp_path / "db")
    _save(db, uid, new=True)
    before = _state(db)
    _save(db, uid, new=True)  # e.g. the webhook saved it between pull's lookup and its write
    assert _state(db) == before
    _save(db, uid, new=False)
    assert _state(db) == before
