"""The exact query shapes the aperturedb SDK and Label Studio send (query-language.md §4)."""

from __future__ import annotations

import pytest

from .helpers import UID, body, entities, fail, jpeg, ok, one, pack_files, packs_in_rows, png

WIPE_FAMILIES = [
    "Image",
    "Video",
    "Blob",
    "Clip",
    "DescriptorSet",
    "BoundingBox",
    "Polygon",
    "Frame",
    "Entity",
]
CLASSIC = {"_uniqueid": ["!=", "0.0.0"]}
EXPRESSION = ["$_uniqueid", "!=", "0.0.0"]  # what aperturedb 0.5's Utils.remove_all_objects sends


def wipe(constraints):
    return [{f"Delete{f}": {"constraints": constraints}} for f in WIPE_FAMILIES] + [
        {"GetSchema": {"refresh": True}}
    ]


@pytest.fixture
def full(db):
    ok(
        db,
        [
            {"CreateIndex": {"index_type": "entity", "class": "_Image", "property_key": "id"}},
            {"AddImage": {"_ref": 1, "properties": {"id": 1}}},
            {
                "AddBoundingBox": {
                    "image_ref": 1,
                    "rectangle": {"x": 0, "y": 0, "width": 2, "height": 2},
                }
            },
            {"AddPolygon": {"image_ref": 1, "polygons": [[[0, 0], [3, 0], [0, 3]]]}},
            {"AddBlob": {"_ref": 2}},
            {"AddEntity": {"_ref": 3, "class": "Person", "connect": {"ref": 1, "class": "in"}}},
            {
                "AddEntity": {
                    "class": "Dog",
                    "connect": {"ref": 3, "class": "owns", "direction": "in"},
                }
            },
            {"AddConnection": {"class": "blob_of", "src": 2, "dst": 3}},
        ],
        [jpeg(), b"blob"],
    )
    return db


@pytest.mark.parametrize("constraints", [CLASSIC, EXPRESSION], ids=["classic", "expression"])
def test_remove_all_objects(full, constraints):
    r, _ = ok(full, wipe(constraints))
    assert len(r) == 10
    assert [body(r, i)["status"] for i in range(10)] == [0] * 10
    schema = body(r, 9)
    assert schema["entities"] is None and schema["connections"] is None
    # Indexes survive the wipe, as in ApertureDB.
    assert (
        one(
            full, {"CreateIndex": {"index_type": "entity", "class": "_Image", "property_key": "id"}}
        )["status"]
        == 2
    )


@pytest.mark.parametrize("constraints", [CLASSIC, EXPRESSION], ids=["classic", "expression"])
def test_remove_all_objects_on_an_empty_database(db, constraints):
    r, _ = ok(db, wipe(constraints))
    assert [body(r, i)["status"] for i in range(10)] == [0] * 10
    assert body(r, 9)["entities"] is None and body(r, 9)["connections"] is None


def test_unsupported_families(db):
    for family in ("Video", "Clip", "Frame"):
        assert one(db, {f"Delete{family}": {"constraints": CLASSIC}}) == {"status": 0, "count": 0}
        r = fail(db, [{f"Find{family}": {}}])
        assert "not supported" in r["info"] and f"Find{family}" in r["info"]
    r = fail(db, [{"AddVideo": {}}], [b"\x00\x00\x00\x18ftypmp42"])
    assert "not supported" in r["info"]


def test_descriptors_on_an_empty_database(db):
    """Descriptors are supported now; on an empty store the SDK's wipe and counts find none."""
    assert one(db, {"DeleteDescriptor": {"constraints": CLASSIC}}) == {"status": 0, "count": 0}
    assert one(db, {"FindDescriptor": {"results": {"count": True}}}) == {
        "status": 0,
        "returned": 0,
        "count": 0,
    }
    assert one(db, {"AddDescriptorSet": {"name": "s", "dimensions": 4}}) == {"status": 0}


def test_descriptor_sets_are_found_as_none(db):
    """What the SDK's Utils (get_descriptorset_list, count_descriptorsets) ask an empty store."""
    assert one(db, {"FindDescriptorSet": {"results": {"list": ["_name"]}, "metrics": True}}) == {
        "status": 0,
        "returned": 0,
        "entities": [],
    }
    assert (
        one(db, {"FindDescriptorSet": {"with_name": "s", "results": {"count": True}}})["count"] == 0
    )
    assert one(db, {"DeleteDescriptorSet": {"constraints": {"_name": ["==", "s"]}}}) == {
        "status": 0,
        "count": 0,
    }
    r = fail(db, [{"FindDescriptorSet": {"with_name": 5}}])
    assert "with_name" in r["info"]


def test_sdk_counts_and_schema_reads(full):
    r, _ = ok(
        full,
        [
            {"FindEntity": {"with_class": "Person", "results": {"count": True}}},
            {"FindImage": {"results": {"count": True}}},
            {"FindConnection": {"with_class": "owns", "results": {"count": True}}},
            {"GetSchema": {}},
        ],
    )
    assert [body(r, i)["count"] for i in range(3)] == [1, 1, 1]
    assert body(r, 3)["entities"]["classes"]["_Image"]["properties"]["id"][1] is True


def test_sdk_create_index_on_empty_database(db):
    cmds = [
        {"CreateIndex": {"index_type": "entity", "class": c, "property_key": "id"}}
        for c in ("_Image", "_Blob", "_BoundingBox", "_Polygon", "_Descriptor")
    ]
    r, _ = ok(db, cmds)
    assert all(body(r, i)["status"] == 0 for i in range(len(cmds)))
    r, _ = ok(db, cmds)
    assert all(body(r, i)["status"] == 2 for i in range(len(cmds)))


def image_item(i, ref):
    return [
        {
            "AddImage": {
                "_ref": ref,
                "format": "jpg",
                "properties": {"id": i, "date": {"_date": f"2024-01-0{i % 9 + 1}T10:00:00"}},
                "if_not_found": {"id": ["==", i]},
            }
        }
    ]


def test_parallel_loader_batch_with_renumbered_refs_and_status_2(db, folder):
    """ParallelLoader merges items into one transaction; existing ones answer 2, the rest 0."""
    ok(db, [c for i in range(3) for c in image_item(i, i + 1)], [jpeg()] * 3)
    query = [c for i in range(5) for c in image_item(i, i + 1)]
    r, _ = ok(db, query, [jpeg()] * 5)
    assert [body(r, i)["status"] for i in range(5)] == [2, 2, 2, 0, 0]
    assert [body(r, i).get("info") for i in range(3)] == ["Object Exists!"] * 3
    assert one(db, {"FindImage": {"results": {"count": True}}})["count"] == 5
    # The blobs of the images that existed were consumed; each query left one pack.
    assert len(pack_files(folder)) == 2
    r, blobs = ok(db, [{"FindImage": {"blobs": True}}])
    assert len(blobs) == 5 and all(b == jpeg() for b in blobs)
    # A re-run where everything exists keeps no pack at all.
    r, _ = ok(db, query, [jpeg()] * 5)
    assert [body(r, i)["status"] for i in range(5)] == [2] * 5
    assert {f.split("/")[-1] for f in pack_files(folder)} == packs_in_rows(folder)
    assert len(pack_files(folder)) == 2


def test_bbox_and_connection_loader_shapes(db):
    ok(db, [c for i in range(2) for c in image_item(i, i + 1)], [jpeg(), jpeg()])
    ok(db, [{"AddEntity": {"class": "Person", "properties": {"pid": 1}}}])
    batch = []
    for n, img in enumerate([0, 1, 1]):
        find_ref, base = 2 * n + 1, 2 * n + 2
        batch += [
            {
                "FindImage": {
                    "_ref": find_ref,
                    "unique": True,
                    "blobs": False,
                    "constraints": {"id": ["==", img]},
                }
            },
            {
                "AddBoundingBox": {
                    "_ref": base,
                    "image_ref": find_ref,
                    "label": "person",
                    "rectangle": {"x": n, "y": 0, "width": 5, "height": 5},
                    "properties": {"box_id": n},
                    "if_not_found": {"box_id": ["==", n]},
                }
            },
        ]
    r, _ = ok(db, batch)
    assert all(body(r, i)["status"] == 0 for i in range(len(batch)))
    r, _ = ok(
        db,
        [
            {
                "FindEntity": {
                    "_ref": 1,
                    "unique": True,
                    "with_class": "Person",
                    "constraints": {"pid": ["==", 1]},
                }
            },
            {"FindImage": {"_ref": 2, "unique": True, "constraints": {"id": ["==", 1]}}},
            {
                "AddConnection": {
                    "class": "appears_in",
                    "src": 1,
                    "dst": 2,
                    "properties": {"conf": 0.9},
                    "if_not_found": {"conf": ["==", 0.9]},
                }
            },
        ],
    )
    assert body(r, 2)["status"] == 0
    r, _ = ok(
        db,
        [
            {
                "FindEntity": {
                    "_ref": 1,
                    "unique": True,
                    "with_class": "Person",
                    "constraints": {"pid": ["==", 1]},
                }
            },
            {"FindImage": {"_ref": 2, "unique": True, "constraints": {"id": ["==", 1]}}},
            {
                "AddConnection": {
                    "class": "appears_in",
                    "src": 1,
                    "dst": 2,
                    "properties": {"conf": 0.9},
                    "if_not_found": {"conf": ["==", 0.9]},
                }
            },
        ],
    )
    assert body(r, 2)["status"] == 2


def test_conditional_add_of_duplicates_in_one_batch(db):
    """The SDK batches three rows with the same box_id and expects one box."""
    ok(db, image_item(0, 1), [jpeg()])
    batch = []
    for n in range(3):
        batch += [
            {"FindImage": {"_ref": 2 * n + 1, "unique": True, "constraints": {"id": ["==", 0]}}},
            {
                "AddBoundingBox": {
                    "image_ref": 2 * n + 1,
                    "if_not_found": {"box_id": ["==", 7]},
                    "properties": {"box_id": 7},
                    "rectangle": {"x": 0, "y": 0, "width": 3, "height": 3},
                }
            },
        ]
    r, _ = ok(db, batch)
    assert [body(r, i)["status"] for i in (1, 3, 5)] == [0, 2, 2]
    assert one(db, {"FindBoundingBox": {"results": {"count": True}}})["count"] == 1


def test_update_loader_batches_updates_without_refs(db):
    ok(db, [{"AddEntity": {"class": "E", "properties": {"id": i, "v": 0}}} for i in range(99)])
    r, _ = ok(
        db,
        [
            {
                "UpdateEntity": {
                    "with_class": "E",
                    "constraints": {"id": ["==", i]},
                    "properties": {"v": 1},
                }
            }
            for i in range(0, 198, 2)
        ],
    )
    counts = [body(r, i)["count"] for i in range(99)]
    assert counts == [1] * 50 + [0] * 49


def test_sdk_entities_wrappers(db):
    ok(
        db,
        [
            {"AddEntity": {"_ref": 1, "class": "Person", "properties": {"name": "a"}}},
            {
                "AddEntity": {
                    "class": "Pet",
                    "properties": {"name": "p"},
                    "connect": {"ref": 1, "class": "owns", "direction": "in"},
                }
            },
        ],
    )
    people = entities(db, with_class="Person", results={"all_properties": True})
    assert people == [{"name": "a", "_uniqueid": people[0]["_uniqueid"]}]
    uid = people[0]["_uniqueid"]
    r, _ = ok(
        db,
        [
            {
                "FindEntity": {
                    "_ref": 1,
                    "with_class": "Person",
                    "constraints": {"_uniqueid": ["==", uid]},
                }
            },
            {
                "FindEntity": {
                    "is_connected_to": {"ref": 1},
                    "group_by_source": True,
                    "results": {"all_properties": True},
                }
            },
            {"UpdateEntity": {"constraints": {"_uniqueid": ["==", uid]}, "properties": {"x": 1}}},
        ],
    )
    grouped = body(r, 1)["entities"]
    assert list(grouped) == [uid] and grouped[uid][0]["name"] == "p"
    assert body(r, 2)["count"] == 1


def test_label_studio_image_lister(db):
    ok(db, [{"AddImage": {"properties": {"i": i}}} for i in range(5)], [png()] * 5)
    ok(db, [{"AddImage": {"properties": {"i": 99, "width": 0, "height": 0}}}], [png()])
    seen, offset = [], 0
    while True:
        r = one(
            db,
            {
                "FindImage": {
                    "uniqueids": True,
                    "blobs": False,
                    "limit": 2,
                    "offset": offset,
                    "constraints": {"width": [">", 0], "height": [">", 0]},
                }
            },
        )
        if r["returned"] == 0:
            break
        seen += [e["_uniqueid"] for e in r["entities"]]
        offset += r["returned"]
    assert len(seen) == len(set(seen)) == 5 and all(UID.match(u) for u in seen)


def test_label_studio_batch_annotations(db):
    ok(
        db,
        [
            {"AddImage": {"_ref": 1, "properties": {"i": 1}}},
            {"AddImage": {"_ref": 2, "properties": {"i": 2}}},
            {
                "AddEntity": {
                    "class": "LS_annotation",
                    "properties": {
                        "LS_data": '{"a": 1}',
                        "LS_date": {"_date": "2024-05-01T10:00:00+00:00"},
                    },
                    "connect": {"ref": 1, "class": "LS_annotation_image", "direction": "out"},
                }
            },
        ],
        [png(), png()],
    )
    ids = [e["_uniqueid"] for e in entities(db, "FindImage", uniqueids=True)]
    r, _ = ok(
        db,
        [
            {
                "FindImage": {
                    "_ref": 1,
                    "uniqueids": True,
                    "results": {"list": ["width", "height"]},
                    "constraints": {"_uniqueid": ["in", ids]},
                }
            },
            {
                "FindEntity": {
                    "with_class": "LS_annotation",
                    "group_by_source": True,
                    "is_connected_to": {"ref": 1, "direction": "in"},
                    "results": {"list": ["LS_data", "LS_date"]},
                }
            },
        ],
    )
    assert [(e["width"], e["height"]) for e in body(r, 0)["entities"]] == [(64, 48), (64, 48)]
    grouped = body(r, 1)["entities"]
    assert grouped[ids[0]] == [
        {"LS_data": '{"a": 1}', "LS_date": {"_date": "2024-05-01T10:00:00+00:00"}}
    ]
    assert grouped.get(ids[1], []) == []


def test_failure_envelopes_the_sdk_accepts(db):
    r = fail(db, [{"BadCommand": {}}])
    assert set(r) <= {"status", "info", "FailedCommand"}
    ok(db, [{"AddEntity": {"class": "P"}}, {"AddEntity": {"class": "P"}}])
    r = fail(db, [{"FindEntity": {"with_class": "P", "unique": True}}], status=3)
    assert isinstance(r["info"], str)


def test_get_status_shape(db):
    r = one(db, {"GetStatus": {}})
    assert r["status"] == 0 and r["info"] == "OK" and "version" in r and "system" in r


@pytest.mark.parametrize(
    "constraints, expected",
    [
        (["$age", ">=", 30], ["ann", "bob"]),
        (["all", ["$age", ">=", 20], ["$age", "<", 40]], ["ann", "cid"]),
        (["any", ["$name", "==", "bob"], ["$age", "<", 30]], ["bob", "cid"]),
        (
            ["all", ["$age", ">", 0], ["any", ["$name", "==", "ann"], ["$name", "==", "cid"]]],
            ["ann", "cid"],
        ),
        (["$name", "in", {"array": ["ann", "bob", "zed"]}], ["ann", "bob"]),
        (["$name", "not in", {"array": ["ann"]}], ["bob", "cid", "dee"]),
        (["$born", "<", {"to_date": "2000-01-01T00:00:00Z"}], ["ann", "bob"]),
        (["$tag", "==", "$$x"], ["dee"]),
        (["$age", "==", None], ["dee"]),
    ],
)
def test_sdk_expression_constraints(db, constraints, expected):
    ok(
        db,
        [
            {"AddEntity": {"class": "P", "properties": p}}
            for p in [
                {"name": "ann", "age": 30, "born": {"_date": "1994-01-01"}},
                {"name": "bob", "age": 40, "born": {"_date": "Mon Aug 7 10:59:24 PDT 1984"}},
                {"name": "cid", "age": 20, "born": {"_date": "2004-01-01"}},
                {"name": "dee", "tag": "$x"},
            ]
        ],
    )
    got = entities(db, with_class="P", constraints=constraints, results={"list": ["name"]})
    assert sorted(e["name"] for e in got) == expected


def test_sdk_expression_if_not_found(db):
    cmd = {
        "AddEntity": {
            "class": "P",
            "properties": {"sha": "abc"},
            "if_not_found": ["$sha", "==", "abc"],
        }
    }
    assert one(db, cmd)["status"] == 0
    assert one(db, cmd)["status"] == 2


@pytest.mark.parametrize(
    "constraints",
    [
        [],
        ["$"],
        ["$age", "=="],
        ["$age", "~", 1],
        ["$age", "==", "$other"],
        ["both", ["$a", "==", 1]],
        ["all", "x"],
        [5, "==", 1],
    ],
)
def test_bad_expression_constraints(db, constraints):
    r = fail(db, [{"FindEntity": {"constraints": constraints}}])
    assert "FindEntity" in r["info"]
