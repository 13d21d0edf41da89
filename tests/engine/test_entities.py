"""AddEntity, FindEntity, UpdateEntity, DeleteEntity and property values."""

from __future__ import annotations

import pytest

from .helpers import UID, body, entities, fail, ok, one, open_db, snapshot


def add(db, cls="Person", ref=None, **props):
    cmd = {"class": cls, "properties": props}
    if ref is not None:
        cmd["_ref"] = ref
    return one(db, {"AddEntity": cmd})


def test_add_answers_status_0(db):
    assert add(db, name="ada") == {"status": 0}


@pytest.mark.parametrize(
    "value",
    [
        0,
        1,
        -7,
        2**53 + 1,
        -(2**62),
        3.5,
        -0.25,
        1e-9,
        6.02e23,
        "",
        "plain",
        "ünïcödé ✓ 漢字",
        'with "quotes" and \\ backslash',
        "x" * 10_000,
        True,
        False,
        '{"nested": [1, 2, {"a": null}]}',
    ],
)
def test_property_values_round_trip(db, value):
    add(db, v=value)
    [e] = entities(db, with_class="Person", results={"all_properties": True})
    assert e["v"] == value
    assert type(e["v"]) is type(value)


@pytest.mark.parametrize(
    "text",
    [
        "2018-02-27T13:45:12-08:00",
        "2024-05-01T12:00:00",
        "2024-05-01T12:00:00.123456+02:00",
        "2024-05-01",
        "Mon Aug 7 10:59:24 PDT 2017",
    ],
)
def test_dates_round_trip_as_date_objects(db, text):
    add(db, when={"_date": text})
    [e] = entities(db, with_class="Person", results={"list": ["when"]})
    assert e["when"] == {"_date": text}


def test_bad_date_is_an_error(db, folder):
    before = snapshot(folder)
    r = fail(db, [{"AddEntity": {"class": "P", "properties": {"d": {"_date": "yesterday"}}}}])
    assert "AddEntity" in r["info"] and "date" in r["info"]
    assert snapshot(folder) == before


def test_null_property_means_absent(db):
    add(db, a=1, b=None)
    [e] = entities(db, with_class="Person", results={"all_properties": True})
    assert "b" not in e
    assert (
        one(db, {"FindEntity": {"constraints": {"b": ["==", None]}, "results": {"count": True}}})[
            "count"
        ]
        == 1
    )


def test_find_without_class_spans_all_classes(db):
    add(db, "A", n=1)
    add(db, "B", n=2)
    assert one(db, {"FindEntity": {}}) == {"status": 0, "returned": 0}
    got = entities(db, results={"list": ["n"]})
    assert sorted(e["n"] for e in got) == [1, 2]
    assert [e["n"] for e in entities(db, with_class="B", results={"list": ["n"]})] == [2]
    assert entities(db, with_class="Nope", results={"list": ["n"]}) == []


def test_empty_find_is_status_0_with_empty_entities(db):
    r = one(db, {"FindEntity": {"with_class": "Ghost", "results": {"list": ["x"]}}})
    assert r == {"status": 0, "returned": 0, "entities": []}


def test_uniqueids_are_well_formed_distinct_and_stable(db):
    for i in range(5):
        add(db, "A" if i % 2 else "B", i=i)
    first = entities(db, uniqueids=True, results={"list": ["i"]})
    uids = [e["_uniqueid"] for e in first]
    assert all(UID.match(u) for u in uids)
    assert len(set(uids)) == 5 and "0.0.0" not in uids
    one(db, {"UpdateEntity": {"properties": {"touched": True}}})
    again = entities(db, uniqueids=True, results={"list": ["i"]})
    assert {e["i"]: e["_uniqueid"] for e in again} == {e["i"]: e["_uniqueid"] for e in first}


def test_uniqueids_without_results_yields_entities(db):
    add(db, x=1)
    r = one(db, {"FindEntity": {"uniqueids": True}})
    assert r["returned"] == 1 and list(r["entities"][0]) == ["_uniqueid"]


def test_add_entity_requires_a_user_class(db, folder):
    before = snapshot(folder)
    assert "class" in fail(db, [{"AddEntity": {"properties": {"a": 1}}}])["info"]
    fail(db, [{"AddEntity": {"class": "_Image"}}])
    fail(db, [{"AddEntity": {"class": ""}}])
    fail(db, [{"AddEntity": {"class": 5}}])
    assert snapshot(folder) == before


def test_reserved_property_names_are_refused(db):
    r = fail(db, [{"AddEntity": {"class": "P", "properties": {"_secret": 1}}}])
    assert "_secret" in r["info"]
    add(db, a=1)
    fail(db, [{"UpdateEntity": {"properties": {"_uniqueid": "1.0.1"}}}])


def test_update_sets_and_removes_properties_and_counts(db):
    add(db, name="a", age=1, tmp="x")
    add(db, name="b", age=2, tmp="y")
    add(db, "Other", name="a")
    r = one(
        db,
        {
            "UpdateEntity": {
                "with_class": "Person",
                "constraints": {"name": ["==", "a"]},
                "properties": {"age": 10, "new": "n"},
                "remove_props": ["tmp"],
            }
        },
    )
    assert r == {"status": 0, "count": 1}
    got = entities(db, with_class="Person", results={"all_properties": True}, sort="name")
    assert [(e["name"], e["age"], e.get("new"), e.get("tmp")) for e in got] == [
        ("a", 10, "n", None),
        ("b", 2, None, "y"),
    ]
    # The entity of the other class kept its properties.
    [other] = entities(db, with_class="Other", results={"all_properties": True})
    assert "new" not in other


def test_update_matching_nothing_counts_zero(db):
    assert one(db, {"UpdateEntity": {"with_class": "X", "properties": {"a": 1}}}) == {
        "status": 0,
        "count": 0,
    }


def test_update_can_change_a_value_type(db):
    add(db, v=1)
    one(db, {"UpdateEntity": {"properties": {"v": "one"}}})
    assert entities(db, results={"list": ["v"]}) == [{"v": "one"}]


def test_update_to_null_removes_nothing_else(db):
    add(db, a=1, b=2)
    one(db, {"UpdateEntity": {"properties": {"a": None}}})
    [e] = entities(db, results={"all_properties": True})
    assert e["b"] == 2


def test_update_and_delete_by_ref(db):
    add(db, n=1)
    add(db, n=2)
    add(db, n=3)
    r, _ = ok(
        db,
        [
            {"FindEntity": {"_ref": 1, "constraints": {"n": [">=", 2]}}},
            {"UpdateEntity": {"ref": 1, "properties": {"big": True}}},
        ],
    )
    assert body(r, 1)["count"] == 2
    r, _ = ok(
        db,
        [
            {"FindEntity": {"_ref": 1, "constraints": {"big": ["==", True]}}},
            {"DeleteEntity": {"ref": 1, "constraints": {"n": ["==", 3]}}},
        ],
    )
    assert body(r, 1) == {"status": 0, "count": 1}
    assert sorted(e["n"] for e in entities(db, results={"list": ["n"]})) == [1, 2]


def test_delete_counts_and_removes(db):
    for i in range(4):
        add(db, i=i)
    add(db, "Keep", i=0)
    r = one(db, {"DeleteEntity": {"with_class": "Person", "constraints": {"i": ["<", 3]}}})
    assert r == {"status": 0, "count": 3}
    assert one(db, {"FindEntity": {"results": {"count": True}}})["count"] == 2
    assert one(db, {"DeleteEntity": {"with_class": "Person"}})["count"] == 1
    assert one(db, {"DeleteEntity": {"with_class": "Person"}}) == {"status": 0, "count": 0}


def test_delete_removes_the_entity_connections(db):
    ok(
        db,
        [
            {"AddEntity": {"_ref": 1, "class": "A"}},
            {"AddEntity": {"_ref": 2, "class": "B"}},
            {"AddConnection": {"class": "ab", "src": 1, "dst": 2}},
        ],
    )
    one(db, {"DeleteEntity": {"with_class": "A"}})
    assert one(db, {"FindConnection": {"results": {"count": True}}})["count"] == 0


def test_unique_find(db):
    add(db, k=1)
    add(db, k=1)
    add(db, k=2)
    r = one(
        db,
        {
            "FindEntity": {
                "unique": True,
                "constraints": {"k": ["==", 2]},
                "results": {"list": ["k"]},
            }
        },
    )
    assert r["entities"] == [{"k": 2}]
    # Zero matches: an empty set, not an error.
    assert one(db, {"FindEntity": {"unique": True, "constraints": {"k": ["==", 9]}}})["status"] == 0
    r = fail(db, [{"FindEntity": {"unique": True, "constraints": {"k": ["==", 1]}}}], status=3)
    assert "FindEntity" in r["info"]


def test_if_not_found_adds_once(db):
    cmd = {
        "AddEntity": {
            "class": "P",
            "properties": {"id": 7, "v": "first"},
            "if_not_found": {"id": ["==", 7]},
        }
    }
    assert one(db, cmd) == {"status": 0}
    again = {
        "AddEntity": {
            "class": "P",
            "properties": {"id": 7, "v": "second"},
            "if_not_found": {"id": ["==", 7]},
        }
    }
    assert one(db, again) == {"status": 2, "info": "Object Exists!"}
    assert entities(db, with_class="P", results={"list": ["v"]}) == [{"v": "first"}]


def test_if_not_found_only_looks_at_the_same_class(db):
    add(db, "Other", id=7)
    cmd = {"AddEntity": {"class": "P", "properties": {"id": 7}, "if_not_found": {"id": ["==", 7]}}}
    assert one(db, cmd)["status"] == 0


def test_if_not_found_sees_earlier_adds_of_the_same_query(db):
    cmd = {"AddEntity": {"class": "P", "properties": {"id": 1}, "if_not_found": {"id": ["==", 1]}}}
    r, _ = ok(db, [cmd, cmd, cmd])
    assert [body(r, i)["status"] for i in range(3)] == [0, 2, 2]
    assert one(db, {"FindEntity": {"results": {"count": True}}})["count"] == 1


def test_if_not_found_empty_matches_any_object_of_the_class(db):
    cmd = {"AddEntity": {"class": "P", "if_not_found": {}}}
    assert one(db, cmd)["status"] == 0
    assert one(db, cmd)["status"] == 2


def test_query_as_json_string_and_bytes(db):
    r, _ = db.query('[{"AddEntity": {"class": "S", "properties": {"a": 1}}}]')
    assert r == [{"AddEntity": {"status": 0}}]
    r, _ = db.query(b'[{"FindEntity": {"with_class": "S", "results": {"list": ["a"]}}}]')
    assert body(r)["entities"] == [{"a": 1}]


def test_get_status(db):
    r = one(db, {"GetStatus": {}})
    assert r["status"] == 0 and r["info"] == "OK" and isinstance(r["version"], str)


def test_data_survives_reopen(folder):

    with open_db(folder) as db:
        add(db, name="persisted", when={"_date": "2020-01-01T00:00:00Z"})
    with open_db(folder) as db:
        assert entities(db, results={"list": ["name", "when"]}) == [
            {"name": "persisted", "when": {"_date": "2020-01-01T00:00:00Z"}}
        ]
