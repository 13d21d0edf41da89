"""`_ref` across commands, `is_connected_to`, `connect`, and what a ref binds to."""

from __future__ import annotations

import pytest

from .helpers import body, entities, fail, ok, one, snapshot


def names(r, i, key="name"):
    return sorted(e[key] for e in body(r, i)["entities"])


def test_refs_pass_result_sets_between_commands(db):
    ok(
        db,
        [
            {"AddEntity": {"class": "P", "properties": {"name": n, "n": i}}}
            for i, n in enumerate("abcd")
        ],
    )
    r, _ = ok(
        db,
        [
            {"FindEntity": {"_ref": 1, "with_class": "P", "constraints": {"n": [">=", 1]}}},
            {"FindEntity": {"_ref": 2, "with_class": "P", "constraints": {"n": ["<=", 2]}}},
            {"UpdateEntity": {"ref": 1, "constraints": {"n": ["<", 3]}, "properties": {"hit": 1}}},
            {"DeleteEntity": {"ref": 2, "constraints": {"n": ["==", 0]}}},
            {
                "FindEntity": {
                    "with_class": "P",
                    "constraints": {"hit": ["==", 1]},
                    "results": {"list": ["name"]},
                }
            },
        ],
    )
    assert body(r, 2)["count"] == 2 and body(r, 3)["count"] == 1
    assert names(r, 4) == ["b", "c"]


def test_find_ref_binds_the_page_after_sort_offset_and_limit(db):
    ok(db, [{"AddEntity": {"class": "P", "properties": {"n": i}}} for i in range(10)])
    r, _ = ok(
        db,
        [
            {
                "FindEntity": {
                    "_ref": 1,
                    "with_class": "P",
                    "limit": 3,
                    "offset": 2,
                    "results": {"sort": {"key": "n", "order": "descending"}},
                }
            },
            {"DeleteEntity": {"ref": 1}},
        ],
    )
    assert body(r, 1)["count"] == 3
    left = [e["n"] for e in entities(db, with_class="P", results={"list": ["n"], "sort": "n"})]
    assert left == [0, 1, 2, 3, 4, 8, 9]


def test_find_with_empty_set_still_defines_the_ref(db):
    r, _ = ok(
        db,
        [
            {"FindEntity": {"_ref": 1, "with_class": "Nobody"}},
            {"FindEntity": {"is_connected_to": {"ref": 1}, "results": {"list": ["x"]}}},
            {"UpdateEntity": {"ref": 1, "properties": {"a": 1}}},
            {"DeleteEntity": {"ref": 1}},
            {"AddEntity": {"class": "Child", "connect": {"ref": 1, "class": "of"}}},
        ],
    )
    assert [next(iter(x.values()))["status"] for x in r] == [0, 0, 0, 0, 0]
    assert body(r, 1)["entities"] == [] and body(r, 2)["count"] == 0


def test_add_ref_binds_the_new_object(db):
    r, _ = ok(
        db,
        [
            {"AddEntity": {"_ref": 1, "class": "P", "properties": {"name": "new"}}},
            {"UpdateEntity": {"ref": 1, "properties": {"touched": True}}},
        ],
    )
    assert body(r, 1)["count"] == 1
    assert entities(db, results={"list": ["name", "touched"]}) == [{"name": "new", "touched": True}]


def test_add_with_if_not_found_binds_the_existing_object(db):
    """Label Studio adds an annotation with if_not_found, then updates and connects it by ref."""
    ok(
        db,
        [
            {"AddEntity": {"class": "Ann", "properties": {"LS_id": 5, "v": 1}}},
            {"AddEntity": {"class": "Task", "properties": {"id": 1}}},
        ],
    )
    r, _ = ok(
        db,
        [
            {"FindEntity": {"_ref": 1, "with_class": "Task"}},
            {
                "AddEntity": {
                    "_ref": 2,
                    "class": "Ann",
                    "properties": {"LS_id": 5, "v": 2},
                    "if_not_found": {"LS_id": ["==", 5]},
                }
            },
            {"UpdateEntity": {"ref": 2, "properties": {"v": 3}}},
            {"AddConnection": {"class": "annotates", "src": 2, "dst": 1, "if_not_found": {}}},
            {"AddConnection": {"class": "annotates", "src": 2, "dst": 1, "if_not_found": {}}},
        ],
    )
    assert [next(iter(x.values()))["status"] for x in r] == [0, 2, 0, 0, 2]
    assert body(r, 2)["count"] == 1
    assert entities(db, with_class="Ann", results={"list": ["v"]}) == [{"v": 3}]
    assert one(db, {"FindConnection": {"results": {"count": True}}})["count"] == 1


def test_reusing_a_ref_is_an_error(db, folder):
    before = snapshot(folder)
    r = fail(
        db,
        [
            {"AddEntity": {"_ref": 1, "class": "P"}},
            {"AddEntity": {"_ref": 1, "class": "P"}},
        ],
    )
    assert "_ref" in r["info"] and "command 2" in r["info"]
    assert snapshot(folder) == before


@pytest.mark.parametrize(
    "command",
    [
        {"UpdateEntity": {"ref": 3, "properties": {"a": 1}}},
        {"DeleteEntity": {"ref": 3}},
        {"FindEntity": {"is_connected_to": {"ref": 3}}},
        {"AddEntity": {"class": "P", "connect": {"ref": 3, "class": "c"}}},
        {"AddConnection": {"class": "c", "src": 3, "dst": 1}},
        {"AddConnection": {"class": "c", "src": 1, "dst": 3}},
        {"FindConnection": {"src": 3}},
        {
            "AddBoundingBox": {
                "image_ref": 3,
                "rectangle": {"x": 0, "y": 0, "width": 1, "height": 1},
            }
        },
        {"FindBoundingBox": {"image_ref": 3}},
        {"AddEntity": {"class": "P", "if_not_found": 3}},
    ],
)
def test_undefined_refs_fail_the_query(db, folder, command):
    before = snapshot(folder)
    r = fail(db, [{"AddEntity": {"_ref": 1, "class": "P"}}, command])
    assert "3" in r["info"] and next(iter(command)) in r["info"]
    assert snapshot(folder) == before


def test_a_ref_must_come_from_an_earlier_command(db):
    fail(
        db,
        [
            {"FindEntity": {"is_connected_to": {"ref": 2}}},
            {"FindEntity": {"_ref": 2}},
        ],
    )


def test_refs_do_not_survive_the_query(db):
    ok(db, [{"AddEntity": {"_ref": 1, "class": "P"}}])
    fail(db, [{"DeleteEntity": {"ref": 1}}])


def test_large_ref_numbers_are_accepted(db):
    r, _ = ok(
        db,
        [
            {"AddEntity": {"_ref": 99999, "class": "P"}},
            {"AddEntity": {"_ref": 12345, "class": "Q", "connect": {"ref": 99999, "class": "c"}}},
        ],
    )
    assert one(db, {"FindConnection": {"results": {"count": True}}})["count"] == 1


@pytest.fixture
def chain(db):
    """x -> y -> z (class "next"), x -> z (class "skip", w=1), all of class N."""
    ok(
        db,
        [
            {"AddEntity": {"_ref": 1, "class": "N", "properties": {"name": "x"}}},
            {"AddEntity": {"_ref": 2, "class": "N", "properties": {"name": "y"}}},
            {"AddEntity": {"_ref": 3, "class": "N", "properties": {"name": "z"}}},
            {"AddConnection": {"class": "next", "src": 1, "dst": 2, "properties": {"w": 5}}},
            {"AddConnection": {"class": "next", "src": 2, "dst": 3, "properties": {"w": 7}}},
            {"AddConnection": {"class": "skip", "src": 1, "dst": 3, "properties": {"w": 1}}},
        ],
    )
    return db


def neighbours(db, start, **spec):
    r, _ = ok(
        db,
        [
            {"FindEntity": {"_ref": 1, "with_class": "N", "constraints": {"name": ["==", start]}}},
            {
                "FindEntity": {
                    "with_class": "N",
                    "is_connected_to": {"ref": 1, **spec},
                    "results": {"list": ["name"]},
                }
            },
        ],
    )
    return names(r, 1)


@pytest.mark.parametrize(
    "start, spec, expected",
    [
        ("y", {"direction": "out"}, ["z"]),  # the connection goes from the ref to the found object
        ("y", {"direction": "in"}, ["x"]),  # from the found object to the ref
        ("y", {"direction": "any"}, ["x", "z"]),
        ("y", {}, ["x", "z"]),
        ("x", {"direction": "out"}, ["y", "z"]),
        ("x", {"direction": "out", "connection_class": "next"}, ["y"]),
        ("x", {"direction": "out", "connection_class": "skip"}, ["z"]),
        ("z", {"connection_class": "nothing"}, []),
        ("x", {"direction": "in"}, []),
        ("z", {"direction": "in", "constraints": {"w": [">", 3]}}, ["y"]),
        ("z", {"direction": "in", "constraints": {"w": ["<", 3]}}, ["x"]),
        ("z", {"constraints": {"w": ["==", None]}}, []),
    ],
)
def test_is_connected_to(chain, start, spec, expected):
    assert neighbours(chain, start, **spec) == expected


def test_is_connected_to_all_and_any(chain):
    r, _ = ok(
        chain,
        [
            {"FindEntity": {"_ref": 1, "with_class": "N", "constraints": {"name": ["==", "x"]}}},
            {"FindEntity": {"_ref": 2, "with_class": "N", "constraints": {"name": ["==", "y"]}}},
            {
                "FindEntity": {
                    "with_class": "N",
                    "results": {"list": ["name"]},
                    "is_connected_to": {
                        "all": [{"ref": 1, "direction": "out"}, {"ref": 2, "direction": "out"}]
                    },
                }
            },
            {
                "FindEntity": {
                    "with_class": "N",
                    "results": {"list": ["name"]},
                    "is_connected_to": {
                        "any": [{"ref": 1, "direction": "in"}, {"ref": 2, "direction": "in"}]
                    },
                }
            },
            {
                "FindEntity": {
                    "with_class": "N",
                    "results": {"list": ["name"]},
                    "is_connected_to": {
                        "any": [
                            {"ref": 1, "direction": "out", "connection_class": "skip"},
                            {"ref": 2, "direction": "in"},
                        ]
                    },
                }
            },
        ],
    )
    assert names(r, 2) == ["z"]
    assert names(r, 3) == ["x"]
    assert names(r, 4) == ["x", "z"]


def test_found_objects_appear_once_even_if_reached_twice(chain):
    r, _ = ok(
        chain,
        [
            {
                "FindEntity": {
                    "_ref": 1,
                    "with_class": "N",
                    "constraints": {"name": ["in", ["x", "y"]]},
                }
            },
            {
                "FindEntity": {
                    "with_class": "N",
                    "is_connected_to": {"ref": 1, "direction": "out"},
                    "results": {"list": ["name"], "count": True},
                }
            },
        ],
    )
    assert names(r, 1) == ["y", "z"] and body(r, 1)["count"] == 2


def test_is_connected_to_combines_with_constraints_and_class(chain):
    ok(
        chain,
        [
            {"FindEntity": {"_ref": 1, "with_class": "N", "constraints": {"name": ["==", "x"]}}},
            {
                "AddEntity": {
                    "class": "Other",
                    "properties": {"name": "o"},
                    "connect": {"ref": 1, "class": "next", "direction": "in"},
                }
            },
        ],
    )
    assert neighbours(chain, "x", direction="out") == ["y", "z"]  # with_class N drops "o"
    r, _ = ok(
        chain,
        [
            {"FindEntity": {"_ref": 1, "with_class": "N", "constraints": {"name": ["==", "x"]}}},
            {
                "FindEntity": {
                    "is_connected_to": {"ref": 1, "direction": "out"},
                    "constraints": {"name": ["!=", "y"]},
                    "results": {"list": ["name"]},
                }
            },
        ],
    )
    assert names(r, 1) == ["o", "z"]


@pytest.mark.parametrize(
    "direction, src, dst", [("out", "new", "p"), ("in", "p", "new"), (None, "new", "p")]
)
def test_connect_directions(db, direction, src, dst):
    connect = {"ref": 1, "class": "rel", "properties": {"k": "v"}}
    if direction:
        connect["direction"] = direction
    ok(
        db,
        [
            {"AddEntity": {"_ref": 1, "class": "N", "properties": {"name": "p"}}},
            {"AddEntity": {"class": "N", "properties": {"name": "new"}, "connect": connect}},
        ],
    )
    r, _ = ok(
        db,
        [
            {"FindEntity": {"_ref": 1, "with_class": "N", "constraints": {"name": ["==", src]}}},
            {
                "FindEntity": {
                    "with_class": "N",
                    "is_connected_to": {"ref": 1, "direction": "out", "connection_class": "rel"},
                    "results": {"list": ["name"]},
                }
            },
            {"FindConnection": {"with_class": "rel", "results": {"list": ["k"]}}},
        ],
    )
    assert names(r, 1) == [dst]
    assert body(r, 2)["connections"] == [{"k": "v"}]


def test_connect_to_every_object_of_the_ref(db):
    ok(db, [{"AddEntity": {"class": "T", "properties": {"i": i}}} for i in range(3)])
    ok(
        db,
        [
            {"FindEntity": {"_ref": 1, "with_class": "T"}},
            {"AddEntity": {"class": "Hub", "connect": {"ref": 1, "class": "has"}}},
        ],
    )
    assert (
        one(db, {"FindConnection": {"with_class": "has", "results": {"count": True}}})["count"] == 3
    )


def test_connect_is_skipped_when_the_object_existed(db):
    ok(db, [{"AddEntity": {"class": "P", "properties": {"id": 1}}}, {"AddEntity": {"class": "T"}}])
    r, _ = ok(
        db,
        [
            {"FindEntity": {"_ref": 1, "with_class": "T"}},
            {
                "AddEntity": {
                    "class": "P",
                    "properties": {"id": 1},
                    "if_not_found": {"id": ["==", 1]},
                    "connect": {"ref": 1, "class": "c"},
                }
            },
        ],
    )
    assert body(r, 1)["status"] == 2
    assert one(db, {"FindConnection": {"results": {"count": True}}})["count"] == 0


@pytest.mark.parametrize(
    "connect, fragment",
    [
        ({"class": "c"}, "ref"),
        ({"ref": 1}, "class"),
        ({"ref": 1, "class": "c", "direction": "sideways"}, "direction"),
        ({"ref": 1, "class": "c", "colour": "red"}, "colour"),
        ("c", "connect"),
    ],
)
def test_bad_connect(db, folder, connect, fragment):
    before = snapshot(folder)
    r = fail(
        db,
        [
            {"AddEntity": {"_ref": 1, "class": "P"}},
            {"AddEntity": {"class": "Q", "connect": connect}},
        ],
    )
    assert fragment in r["info"]
    assert snapshot(folder) == before


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ({"direction": "out"}, "ref"),
        ({"ref": 1, "direction": "up"}, "direction"),
        ({"ref": 1, "connection_class": 5}, "connection_class"),
        ({"ref": 1, "colour": "red"}, "colour"),
        ({"all": []}, "all"),
        ({"any": "x"}, "any"),
        ([1], "is_connected_to"),
    ],
)
def test_bad_is_connected_to(db, spec, fragment):
    r = fail(
        db, [{"AddEntity": {"_ref": 1, "class": "P"}}, {"FindEntity": {"is_connected_to": spec}}]
    )
    assert fragment in r["info"]


def test_if_not_found_with_a_ref_adds_only_when_the_find_was_empty(db):
    r, _ = ok(
        db,
        [
            {"FindEntity": {"_ref": 1, "with_class": "P"}},
            {"AddEntity": {"class": "P", "properties": {"n": 1}, "if_not_found": 1}},
        ],
    )
    assert body(r, 1)["status"] == 0
    r, _ = ok(
        db,
        [
            {"FindEntity": {"_ref": 1, "with_class": "P"}},
            {"AddEntity": {"class": "P", "properties": {"n": 2}, "if_not_found": 1}},
        ],
    )
    assert body(r, 1)["status"] == 2
    assert entities(db, with_class="P", results={"list": ["n"]}) == [{"n": 1}]
