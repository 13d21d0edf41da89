"""db.query(..., dialect="vdms"): VDMS spellings in, VDMS-shaped answers out."""

from __future__ import annotations

import pytest

from .helpers import decode, gradient_png, jpeg, snapshot


def vdms(db, commands, blobs=None):
    return db.query(commands, blobs or [], dialect="vdms")


def vok(db, commands, blobs=None):
    r, out = vdms(db, commands, blobs)
    assert isinstance(r, list) and all("FailedCommand" not in x for x in r), r
    return r, out


def inner(r, i=0):
    return next(iter(r[i].values()))


def vfail(db, commands, blobs=None):
    r, out = vdms(db, commands, blobs)
    assert isinstance(r, list) and len(r) == 1, r
    assert r[0]["status"] == -1 and r[0]["info"] and "FailedCommand" in r[0], r
    assert "internal error" not in r[0]["info"]
    assert out == []
    return r[0]


def test_class_and_results(db):
    vok(
        db,
        [
            {"AddEntity": {"class": "Person", "properties": {"name": "a", "age": 3}}},
            {"AddEntity": {"class": "Dog", "properties": {"name": "d"}}},
        ],
    )
    r, _ = vok(db, [{"FindEntity": {"class": "Person", "results": {"list": ["name", "age"]}}}])
    assert inner(r)["entities"] == [{"name": "a", "age": 3}]
    r, _ = vok(db, [{"FindEntity": {"class": "Person", "results": {"count": ""}}}])
    assert inner(r)["count"] == 1


def test_link_on_add_and_find(db):
    r, _ = vok(
        db,
        [
            {"AddEntity": {"_ref": 1, "class": "Person", "properties": {"name": "a"}}},
            {
                "AddEntity": {
                    "class": "Dog",
                    "properties": {"name": "d"},
                    "link": {"ref": 1, "class": "owns", "direction": "in"},
                }
            },
        ],
    )
    r, _ = vok(
        db,
        [
            {"FindEntity": {"_ref": 1, "class": "Person"}},
            {
                "FindEntity": {
                    "class": "Dog",
                    "link": {"ref": 1, "class": "owns", "direction": "out"},
                    "results": {"list": ["name"]},
                }
            },
            {
                "FindEntity": {
                    "class": "Dog",
                    "link": {"ref": 1, "class": "other"},
                    "results": {"list": ["name"]},
                }
            },
        ],
    )
    assert inner(r, 1)["entities"] == [{"name": "d"}]
    assert inner(r, 2)["entities"] == []


def test_ref1_ref2_connections(db):
    r, _ = vok(
        db,
        [
            {"AddEntity": {"_ref": 1, "class": "A"}},
            {"AddEntity": {"_ref": 2, "class": "B"}},
            {
                "AddConnection": {
                    "class": "ab",
                    "ref1": 1,
                    "ref2": 2,
                    "properties": {"probability": 0.5},
                }
            },
            {"FindConnection": {"class": "ab", "ref1": 1, "results": {"list": ["probability"]}}},
        ],
    )
    assert inner(r, 2)["status"] == 0
    assert inner(r, 3)["connections"] == [{"probability": 0.5}]


def test_conditional_add_with_constraints_answers_0(db):
    cmd = {"AddEntity": {"class": "P", "properties": {"id": 1}, "constraints": {"id": ["==", 1]}}}
    r1, _ = vok(db, [cmd])
    r2, _ = vok(db, [cmd])
    assert inner(r1)["status"] == 0 and inner(r2)["status"] == 0
    r, _ = vok(db, [{"FindEntity": {"class": "P", "results": {"count": ""}}}])
    assert inner(r)["count"] == 1


def test_array_value_means_any_of(db):
    vok(db, [{"AddEntity": {"class": "P", "properties": {"n": i}}} for i in range(4)])
    r, _ = vok(
        db,
        [
            {
                "FindEntity": {
                    "class": "P",
                    "constraints": {"n": ["==", [1, 3]]},
                    "results": {"list": ["n"]},
                }
            }
        ],
    )
    assert sorted(e["n"] for e in inner(r)["entities"]) == [1, 3]
    r, _ = vok(
        db,
        [
            {
                "FindEntity": {
                    "class": "P",
                    "constraints": {"n": ["!=", [1, 3]]},
                    "results": {"list": ["n"]},
                }
            }
        ],
    )
    assert sorted(e["n"] for e in inner(r)["entities"]) == [0, 2]


def test_find_image_returns_pixels_by_default(db):
    data = jpeg()
    vok(db, [{"AddImage": {"properties": {"id": 1}}}], [data])
    r, blobs = vok(db, [{"FindImage": {"constraints": {"id": ["==", 1]}}}])
    assert blobs == [data] and inner(r)["returned"] == 1
    r, blobs = vok(db, [{"FindImage": {"results": {"blob": False, "list": ["id"]}}}])
    assert blobs == [] and inner(r)["entities"] == [{"id": 1}]
    r, blobs = vok(db, [{"FindImage": {"format": "png"}}])
    assert blobs[0].startswith(b"\x89PNG")


def test_boxes_with_image_and_w_h(db):
    r, _ = vok(
        db,
        [
            {"AddImage": {"_ref": 1}},
            {
                "AddBoundingBox": {
                    "image": 1,
                    "rectangle": {"x": 2, "y": 3, "w": 4, "h": 5},
                    "label": "x",
                }
            },
        ],
        [gradient_png()],
    )
    r, blobs = vok(
        db,
        [
            {"FindImage": {"_ref": 1, "results": {"blob": False}}},
            {
                "FindBoundingBox": {
                    "image": 1,
                    "blobs": True,
                    "results": {"list": ["_coordinates", "_label"]},
                }
            },
        ],
    )
    assert inner(r, 1)["entities"][0]["_label"] == "x"
    assert decode(blobs[0]).size == (4, 5)


def test_empty_find_says_no_entities_found(db):
    r, _ = vok(db, [{"FindEntity": {"class": "Nothing"}}])
    assert inner(r)["status"] == 0 and inner(r)["returned"] == 0


@pytest.mark.parametrize(
    "query",
    [
        '[{"AddEntity": ',
        '{"AddEntity": {}}',
        {"AddEntity": {"class": "P"}},
        None,
        42,
        [{"NoSuchCommand": {}}],
        [{"AddEntity": {"class": "P"}}, {"FindEntity": {"link": {"ref": 9}}}],
        [{"AddEntity": {"class": "P", "properties": {"_bad": 1}}}],
        "[" * 100_000 + "]" * 100_000,
    ],
)
def test_failures_are_one_element_lists(db, folder, query):
    before = snapshot(folder)
    vfail(db, query)
    assert snapshot(folder) == before


def test_failed_command_echoes_the_command(db):
    bad = {"FindEntity": {"class": "P", "link": {"ref": 9}}}
    r = vfail(db, [{"AddEntity": {"class": "P"}}, bad])
    assert r["FailedCommand"] == bad
    assert "9" in r["info"]


def test_blob_count_mismatch_uses_vdms_text(db):
    r = vfail(db, [{"AddImage": {}}], [])
    assert "Expected blobs: 1. Received blobs: 0" in r["info"]


def test_descriptors_the_vdms_way(db):
    """VDMS's own descriptor test shapes: `set` names the set, vectors come back by default,
    `_distance` and `_label` are listed, and L2 is squared (20 apart -> 400)."""
    import numpy as np

    vok(
        db,
        [
            {
                "AddDescriptorSet": {
                    "name": "feat",
                    "dimensions": 100,
                    "metric": "L2",
                    "engine": "FaissFlat",
                }
            }
        ],
    )
    vecs = [np.eye(100, dtype=np.float32)[0] * i * 20 for i in range(5)]
    vok(
        db,
        [
            {"AddDescriptor": {"set": "feat", "label": f"l{i}", "properties": {"myid": 200 + i}}}
            for i in range(5)
        ],
        [v.tobytes() for v in vecs],
    )
    r, out = vok(
        db,
        [
            {
                "FindDescriptor": {
                    "set": "feat",
                    "k_neighbors": 3,
                    "results": {"list": ["myid", "_distance", "_label"]},
                }
            }
        ],
        [vecs[2].tobytes()],
    )
    ents = inner(r)["entities"]
    assert [e["_distance"] for e in ents] == [0.0, 400.0, 400.0]
    assert (ents[0]["myid"], ents[0]["_label"]) == (202, "l2")
    assert out[0] == vecs[2].tobytes() and len(out) == 3
    r, _ = vok(
        db,
        [
            {
                "FindDescriptor": {
                    "set": "feat",
                    "k_neighbors": 3,
                    "constraints": {"myid": ["==", 202]},
                    "results": {"list": ["myid"], "blob": False},
                }
            }
        ],
        [vecs[2].tobytes()],
    )
    assert inner(r)["entities"] == [{"myid": 202}]
    r, _ = vok(db, [{"FindDescriptorSet": {"set": "feat", "results": {"list": ["_dimensions"]}}}])
    assert inner(r)["entities"] == [{"_dimensions": 100}]
