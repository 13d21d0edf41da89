"""Bounding boxes and polygons: geometry, labels, filters, grouping, crops."""

from __future__ import annotations

import pytest

from .helpers import UID, body, decode, fail, gradient_png, jpeg, ok, one, snapshot

IMAGE = {"AddImage": {"_ref": 1, "properties": {"id": 1}}}


def find_image(ref=1, id_=1):
    return {"FindImage": {"_ref": ref, "constraints": {"id": ["==", id_]}}}


@pytest.fixture
def boxes(db):
    """Image 1 (64x48 gradient) with three boxes; image 2 with one; image 3 with none."""
    ok(
        db,
        [
            IMAGE,
            {
                "AddBoundingBox": {
                    "image_ref": 1,
                    "label": "cat",
                    "properties": {"LS_id": "a"},
                    "rectangle": {"x": 10, "y": 5, "width": 20, "height": 8},
                }
            },
            {
                "AddBoundingBox": {
                    "image_ref": 1,
                    "label": "dog",
                    "rectangle": {"x": 0, "y": 0, "width": 64, "height": 48},
                }
            },
            {
                "AddBoundingBox": {
                    "image_ref": 1,
                    "label": "",
                    "rectangle": {"x": 40, "y": 30, "w": 4, "h": 2},
                }
            },
            {"AddImage": {"_ref": 2, "properties": {"id": 2}}},
            {
                "AddBoundingBox": {
                    "image_ref": 2,
                    "label": "cat",
                    "properties": {"LS_id": "b"},
                    "rectangle": {"x": 1, "y": 1, "width": 2, "height": 2},
                }
            },
            {"AddImage": {"properties": {"id": 3}}},
        ],
        [gradient_png(64, 48), jpeg(), jpeg()],
    )
    return db


def test_add_bounding_box_answers_status_0(db):
    r, _ = ok(
        db,
        [
            IMAGE,
            {
                "AddBoundingBox": {
                    "image_ref": 1,
                    "rectangle": {"x": 0, "y": 0, "width": 1, "height": 1},
                }
            },
        ],
        [jpeg()],
    )
    assert body(r, 1) == {"status": 0}


def test_find_bounding_box_outputs(boxes):
    r, _ = ok(
        boxes,
        [
            find_image(),
            {
                "FindBoundingBox": {
                    "image_ref": 1,
                    "coordinates": True,
                    "labels": True,
                    "areas": True,
                    "uniqueids": True,
                    "results": {"list": ["LS_id"]},
                }
            },
        ],
    )
    got = body(r, 1)["entities"]
    assert [e["_label"] for e in got] == ["cat", "dog", ""]
    assert got[0]["_coordinates"] == {"x": 10, "y": 5, "width": 20, "height": 8}
    assert got[2]["_coordinates"] == {"x": 40, "y": 30, "width": 4, "height": 2}
    assert [e["_area"] for e in got] == [160, 64 * 48, 8]
    assert [e["LS_id"] for e in got] == ["a", None, None]
    assert all(UID.match(e["_uniqueid"]) for e in got)


def test_label_studio_unlabelled_box_query(boxes):
    """The exact FindBoundingBox Label Studio sends to pick up prediction boxes."""
    r, _ = ok(
        boxes,
        [
            {
                "FindImage": {
                    "_ref": 1,
                    "uniqueids": True,
                    "results": {"list": ["width", "height"]},
                    "constraints": {"id": ["in", [1, 3]]},
                }
            },
            {
                "FindBoundingBox": {
                    "image_ref": 1,
                    "blobs": False,
                    "coordinates": True,
                    "labels": True,
                    "uniqueids": True,
                    "results": {"list": ["LS_id"]},
                    "constraints": {"LS_id": ["==", None]},
                    "group_by_source": True,
                }
            },
        ],
    )
    images = body(r, 0)["entities"]
    assert [(e["width"], e["height"]) for e in images] == [(64, 48), (64, 48)]
    grouped = body(r, 1)["entities"]
    assert set(grouped) == {e["_uniqueid"] for e in images}
    first, third = images[0]["_uniqueid"], images[1]["_uniqueid"]
    assert [b["_label"] for b in grouped[first]] == ["dog", ""]
    assert all(b["LS_id"] is None for b in grouped[first])
    assert grouped[third] == []
    assert body(r, 1)["returned"] == 2


def test_with_label_and_labels_constraint(boxes):
    assert (
        one(boxes, {"FindBoundingBox": {"with_label": "cat", "results": {"count": True}}})["count"]
        == 2
    )
    assert (
        one(
            boxes,
            {
                "FindBoundingBox": {
                    "constraints": {"_label": ["==", "dog"]},
                    "results": {"count": True},
                }
            },
        )["count"]
        == 1
    )
    assert (
        one(boxes, {"FindBoundingBox": {"with_label": "", "results": {"count": True}}})["count"]
        == 1
    )


@pytest.mark.parametrize(
    "rect, expected",
    [
        ({"x": 0, "y": 0, "width": 64, "height": 48}, ["cat", "dog", ""]),
        ({"x": 5, "y": 0, "width": 40, "height": 40}, ["cat", ""]),
        ({"x": 5, "y": 0, "width": 38, "height": 40}, ["cat"]),
        ({"x": 10, "y": 5, "width": 20, "height": 8}, ["cat"]),
        ({"x": 11, "y": 5, "width": 20, "height": 8}, []),
        ({"x": 30, "y": 20, "w": 30, "h": 20}, [""]),
    ],
)
def test_in_rectangle(boxes, rect, expected):
    r, _ = ok(
        boxes,
        [find_image(), {"FindBoundingBox": {"image_ref": 1, "in_rectangle": rect, "labels": True}}],
    )
    assert [e["_label"] for e in body(r, 1)["entities"]] == expected


def test_box_blob_is_the_crop_of_its_image(boxes):
    r, blobs = ok(
        boxes,
        [
            find_image(),
            {
                "FindBoundingBox": {
                    "image_ref": 1,
                    "with_label": "cat",
                    "blobs": True,
                    "coordinates": True,
                }
            },
        ],
    )
    assert body(r, 1)["returned"] == 1 and len(blobs) == 1
    img = decode(blobs[0]).convert("RGB")
    assert img.size == (20, 8)
    assert img.getpixel((0, 0)) == (10, 5, 100) and img.getpixel((19, 7)) == (29, 12, 100)


def test_box_blobs_with_as_format_and_operations(boxes):
    r, blobs = ok(
        boxes,
        [
            find_image(),
            {
                "FindBoundingBox": {
                    "image_ref": 1,
                    "with_label": "cat",
                    "blobs": True,
                    "as_format": "jpg",
                    "operations": [{"type": "resize", "width": 10, "height": 4}],
                }
            },
        ],
    )
    assert blobs[0].startswith(b"\xff\xd8") and decode(blobs[0]).size == (10, 4)


def test_blobs_of_several_boxes_match_returned(boxes):
    r, blobs = ok(boxes, [{"FindBoundingBox": {"blobs": True, "labels": True}}])
    assert body(r)["returned"] == len(blobs) == 4
    assert [e["_blob_index"] for e in body(r)["entities"]] == [0, 1, 2, 3]
    assert decode(blobs[1]).size == (64, 48)


def test_box_connects_to_its_image(boxes):
    r, _ = ok(
        boxes,
        [
            {"FindBoundingBox": {"_ref": 1, "with_label": "dog"}},
            {
                "FindImage": {
                    "is_connected_to": {
                        "ref": 1,
                        "direction": "out",
                        "connection_class": "_BoundingBoxToImage",
                    },
                    "results": {"list": ["id"]},
                }
            },
            {"FindConnection": {"with_class": "_BoundingBoxToImage", "results": {"count": True}}},
        ],
    )
    assert body(r, 1)["entities"] == [{"id": 1}]
    assert body(r, 2)["count"] == 4


def test_image_ref_and_is_connected_to_are_exclusive(boxes):
    r = fail(
        boxes, [find_image(), {"FindBoundingBox": {"image_ref": 1, "is_connected_to": {"ref": 1}}}]
    )
    assert "image_ref" in r["info"]


def test_update_bounding_box(boxes):
    r, _ = ok(
        boxes,
        [
            find_image(),
            {"FindBoundingBox": {"_ref": 2, "image_ref": 1, "with_label": "cat"}},
            {
                "UpdateBoundingBox": {
                    "ref": 2,
                    "label": "lion",
                    "properties": {"LS_id": "z"},
                    "rectangle": {"x": 1, "y": 2, "width": 3, "height": 4},
                }
            },
        ],
    )
    assert body(r, 2) == {"status": 0, "count": 1}
    r = one(
        boxes,
        {
            "FindBoundingBox": {
                "with_label": "lion",
                "coordinates": True,
                "areas": True,
                "results": {"list": ["LS_id"]},
            }
        },
    )
    assert r["entities"] == [
        {"LS_id": "z", "_coordinates": {"x": 1, "y": 2, "width": 3, "height": 4}, "_area": 12}
    ]
    # The old Label Studio form: constraints on a user property.
    r = one(boxes, {"UpdateBoundingBox": {"constraints": {"LS_id": ["==", "b"]}, "label": "tiger"}})
    assert r["count"] == 1


def test_delete_bounding_box(boxes):
    assert one(boxes, {"DeleteBoundingBox": {"constraints": {"_label": ["==", "cat"]}}}) == {
        "status": 0,
        "count": 2,
    }
    assert one(boxes, {"FindBoundingBox": {"results": {"count": True}}})["count"] == 2
    assert one(boxes, {"FindImage": {"results": {"count": True}}})["count"] == 3
    assert one(boxes, {"FindConnection": {"results": {"count": True}}})["count"] == 2


def test_label_studio_delete_annotation_shape(boxes):
    ok(
        boxes,
        [
            find_image(),
            {
                "AddEntity": {
                    "_ref": 2,
                    "class": "LS_annotation",
                    "properties": {"k": 1},
                    "connect": {"ref": 1, "class": "LS_annotation_image"},
                }
            },
            {"FindBoundingBox": {"_ref": 3, "image_ref": 1, "with_label": "cat"}},
            {"AddConnection": {"class": "LS_annotation_region", "src": 2, "dst": 3}},
        ],
    )
    r, _ = ok(
        boxes,
        [
            {
                "FindEntity": {
                    "_ref": 1,
                    "with_class": "LS_annotation",
                    "constraints": {"k": ["==", 1]},
                }
            },
            {
                "FindBoundingBox": {
                    "_ref": 2,
                    "is_connected_to": {"ref": 1, "connection_class": "LS_annotation_region"},
                }
            },
            {"DeleteBoundingBox": {"ref": 2}},
            {"DeleteEntity": {"ref": 1}},
        ],
    )
    assert [body(r, i)["status"] for i in range(4)] == [0, 0, 0, 0]
    assert body(r, 2)["count"] == 1 and body(r, 3)["count"] == 1


@pytest.mark.parametrize(
    "command, fragment",
    [
        ({"AddBoundingBox": {"rectangle": {"x": 0, "y": 0, "width": 1, "height": 1}}}, "image_ref"),
        ({"AddBoundingBox": {"image_ref": 1}}, "rectangle"),
        (
            {
                "AddBoundingBox": {
                    "image_ref": 1,
                    "rectangle": {"x": 0, "y": 0, "width": 0, "height": 1},
                }
            },
            "width",
        ),
        ({"AddBoundingBox": {"image_ref": 1, "rectangle": {"x": 0, "y": 0, "width": 2}}}, "height"),
        (
            {
                "AddBoundingBox": {
                    "image_ref": 1,
                    "rectangle": {"x": "0", "y": 0, "width": 2, "height": 1},
                }
            },
            "x",
        ),
        (
            {
                "AddBoundingBox": {
                    "image_ref": 1,
                    "rectangle": {"x": 0, "y": 0, "width": 1, "height": 1, "z": 1},
                }
            },
            "z",
        ),
        (
            {
                "AddBoundingBox": {
                    "image_ref": 1,
                    "label": 5,
                    "rectangle": {"x": 0, "y": 0, "width": 1, "height": 1},
                }
            },
            "label",
        ),
        (
            {
                "AddBoundingBox": {
                    "image_ref": 2,
                    "rectangle": {"x": 0, "y": 0, "width": 1, "height": 1},
                }
            },
            "image",
        ),
        ({"AddPolygon": {"image_ref": 1}}, "polygons"),
        ({"AddPolygon": {"image_ref": 1, "polygons": [[[0, 0], [1, 1]]]}}, "3"),
        ({"AddPolygon": {"image_ref": 1, "polygons": [[[0, 0], [1, 1], [2]]]}}, "point"),
        ({"AddPolygon": {"image_ref": 1, "polygons": []}}, "polygons"),
        ({"AddPolygon": {"image_ref": 1, "polygons": [[[0, 0], [1, "a"], [2, 2]]]}}, "number"),
        ({"FindBoundingBox": {"in_rectangle": {"x": 0}}}, "in_rectangle"),
        ({"FindBoundingBox": {"with_label": 3}}, "label"),
    ],
)
def test_region_errors(db, folder, command, fragment):
    ok(db, [IMAGE], [jpeg()])
    before = snapshot(folder)
    r = fail(db, [find_image(), {"AddEntity": {"_ref": 2, "class": "E"}}, command])
    assert fragment in r["info"] and next(iter(command)) in r["info"]
    assert snapshot(folder) == before


def test_image_ref_must_name_exactly_one_image(db):
    ok(db, [IMAGE, {"AddImage": {"properties": {"id": 1}}}], [jpeg(), jpeg()])
    r = fail(
        db,
        [
            find_image(),
            {
                "AddBoundingBox": {
                    "image_ref": 1,
                    "rectangle": {"x": 0, "y": 0, "width": 1, "height": 1},
                }
            },
        ],
    )
    assert "exactly one image" in r["info"]


SQUARE = [[10, 10], [30, 10], [30, 30], [10, 30]]
TRIANGLE = [[40, 0], [60, 0], [40, 20]]


@pytest.fixture
def polys(db):
    ok(
        db,
        [
            IMAGE,
            {
                "AddPolygon": {
                    "image_ref": 1,
                    "label": "two",
                    "polygons": [SQUARE, TRIANGLE],
                    "properties": {"k": 1},
                }
            },
            {"AddPolygon": {"image_ref": 1, "label": "tri", "polygons": [TRIANGLE]}},
        ],
        [gradient_png(64, 48)],
    )
    return db


def test_add_and_find_polygons(polys):
    r, _ = ok(
        polys,
        [
            find_image(),
            {
                "FindPolygon": {
                    "image_ref": 1,
                    "vertices": True,
                    "bounds": True,
                    "areas": True,
                    "labels": True,
                    "uniqueids": True,
                    "results": {"list": ["k"]},
                }
            },
        ],
    )
    two, tri = body(r, 1)["entities"]
    assert two["_vertices"] == [SQUARE, TRIANGLE] and tri["_vertices"] == [TRIANGLE]
    assert two["_bounds"] == {"x": 10, "y": 0, "width": 50, "height": 30}
    assert tri["_bounds"] == {"x": 40, "y": 0, "width": 20, "height": 20}
    assert two["_area"] == 400 + 200 and tri["_area"] == 200
    assert (two["_label"], two["k"], tri["k"]) == ("two", 1, None)
    assert UID.match(two["_uniqueid"])


def test_polygon_filters_update_delete(polys):
    assert (
        one(polys, {"FindPolygon": {"with_label": "tri", "results": {"count": True}}})["count"] == 1
    )
    r = one(
        polys,
        {
            "FindPolygon": {
                "in_rectangle": {"x": 35, "y": 0, "width": 30, "height": 30},
                "labels": True,
            }
        },
    )
    assert [e["_label"] for e in r["entities"]] == ["tri"]
    r = one(
        polys,
        {
            "UpdatePolygon": {
                "constraints": {"_label": ["==", "tri"]},
                "label": "t2",
                "polygons": [SQUARE],
            }
        },
    )
    assert r == {"status": 0, "count": 1}
    r = one(polys, {"FindPolygon": {"with_label": "t2", "areas": True, "bounds": True}})
    assert r["entities"] == [
        {"_area": 400, "_bounds": {"x": 10, "y": 10, "width": 20, "height": 20}}
    ]
    assert one(polys, {"DeletePolygon": {"constraints": {"k": ["==", 1]}}})["count"] == 1
    assert one(polys, {"FindPolygon": {"results": {"count": True}}})["count"] == 1


def test_polygon_blob_is_the_crop_of_its_bounds(polys):
    r, blobs = ok(polys, [{"FindPolygon": {"with_label": "tri", "blobs": True}}])
    img = decode(blobs[0]).convert("RGB")
    assert img.size == (20, 20) and img.getpixel((0, 0)) == (40, 0, 100)


def test_sdk_polygon_retrieval_shape(polys):
    r, _ = ok(
        polys,
        [
            find_image(),
            {"FindPolygon": {"image_ref": 1, "bounds": True, "vertices": True, "labels": True}},
        ],
    )
    assert [sorted(e) for e in body(r, 1)["entities"]] == [["_bounds", "_label", "_vertices"]] * 2
