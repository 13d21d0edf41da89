"""The `results` block and the top-level paging switches of Find commands."""

from __future__ import annotations

import pytest

from .helpers import UID, body, fail, ok, one, open_db

ROWS = [
    {"name": "a", "n": 3, "g": "x", "f": 1.5},
    {"name": "b", "n": 1, "g": "y"},
    {"name": "c", "n": 2, "g": "x", "f": -0.5},
    {"name": "d", "n": 5, "g": "y", "f": 4.0},
    {"name": "e", "n": 4, "g": "x", "s": "str"},
]


@pytest.fixture(scope="module")
def rows(tmp_path_factory, targets):
    """Shared by this module's tests, which only read."""
    target = targets.new(tmp_path_factory.mktemp("rows"))
    with open_db(target) as db:
        ok(db, [{"AddEntity": {"class": "R", "properties": p}} for p in ROWS])
        yield db
    targets.drop(target)


def find(db, **params):
    params.setdefault("with_class", "R")
    return one(db, {"FindEntity": params})


def test_list_returns_null_for_missing_keys(rows):
    got = find(rows, results={"list": ["name", "f", "nothere"]})["entities"]
    assert got[1] == {"name": "b", "f": None, "nothere": None}
    assert all(set(e) == {"name", "f", "nothere"} for e in got)


def test_list_of_system_names(rows):
    got = find(rows, results={"list": ["_uniqueid", "name"]}, limit=1)["entities"]
    assert UID.match(got[0]["_uniqueid"]) and got[0]["name"] == "a"


def test_all_properties_includes_uniqueid_and_ignores_list(rows):
    got = find(rows, results={"all_properties": True, "list": ["name"]})["entities"]
    assert got[0] == {**ROWS[0], "_uniqueid": got[0]["_uniqueid"]}
    assert got[1] == {**ROWS[1], "_uniqueid": got[1]["_uniqueid"]}
    assert all(UID.match(e["_uniqueid"]) for e in got)


def test_default_order_is_insertion_order(rows):
    assert [e["name"] for e in find(rows, results={"list": ["name"]})["entities"]] == list("abcde")


def test_count_is_taken_before_limit_and_offset(rows):
    r = find(
        rows,
        constraints={"g": ["==", "x"]},
        limit=2,
        offset=1,
        results={"count": True, "list": ["name"]},
    )
    assert r["count"] == 3 and r["returned"] == 2
    assert [e["name"] for e in r["entities"]] == ["c", "e"]


def test_count_alone_returns_no_entities(rows):
    r = find(rows, results={"count": True})
    assert r == {"status": 0, "returned": 0, "count": 5}


@pytest.mark.parametrize(
    "agg, expected",
    [
        ("sum", 15),
        ("min", 1),
        ("max", 5),
        ("average", 3.0),
    ],
)
def test_aggregates_one_key(rows, agg, expected):
    r = find(rows, results={agg: "n"})
    assert r[agg] == expected
    assert find(rows, results={agg: ["n"]})[agg] == expected


def test_aggregates_use_every_match_not_the_page(rows):
    r = find(
        rows,
        constraints={"g": ["==", "x"]},
        limit=1,
        results={"sum": "n", "count": True, "list": ["name"]},
    )
    assert r["sum"] == 9 and r["count"] == 3 and r["returned"] == 1


def test_aggregates_skip_missing_and_non_numbers(rows):
    assert find(rows, results={"sum": "f"})["sum"] == 5.0
    assert find(rows, results={"average": "f"})["average"] == pytest.approx(5.0 / 3)
    assert find(rows, results={"min": "f", "max": "f"}) == {
        "status": 0,
        "returned": 0,
        "min": -0.5,
        "max": 4.0,
    }
    assert find(rows, results={"sum": "s"})["sum"] == 0


def test_aggregates_over_nothing(rows):
    r = find(rows, constraints={"n": [">", 100]}, results={"sum": "n", "min": "n", "average": "n"})
    assert r["sum"] == 0 and r["min"] is None and r["average"] is None


def test_aggregates_several_keys_give_an_object(rows):
    r = find(rows, results={"max": ["n", "f"]})
    assert r["max"] == {"n": 5, "f": 4.0}


@pytest.mark.parametrize(
    "limit, offset, expected",
    [
        (2, 0, "ab"),
        (2, 3, "de"),
        (10, 4, "e"),
        (None, 2, "cde"),
        (3, 5, ""),
        (0, 0, ""),
        (10**30, 0, "abcde"),
        (1, 10**30, ""),
    ],
)
def test_top_level_limit_and_offset(rows, limit, offset, expected):
    params = {"results": {"list": ["name"]}, "offset": offset}
    if limit is not None:
        params["limit"] = limit
    r = find(rows, **params)
    assert "".join(e["name"] for e in r["entities"]) == expected
    assert r["returned"] == len(expected)


def test_limit_in_results_and_smaller_wins(rows):
    assert len(find(rows, results={"list": ["name"], "limit": 2})["entities"]) == 2
    assert len(find(rows, limit=4, results={"list": ["name"], "limit": 3})["entities"]) == 3
    assert len(find(rows, limit=1, results={"list": ["name"], "limit": 3})["entities"]) == 1


def test_paging_walks_every_object_once(rows):
    seen = []
    for offset in range(0, 6, 2):
        seen += [
            e["name"]
            for e in find(rows, limit=2, offset=offset, results={"list": ["name"]})["entities"]
        ]
    assert seen == list("abcde")


@pytest.mark.parametrize(
    "sort, expected",
    [
        ("n", "bcaed"),
        ({"key": "n"}, "bcaed"),
        ({"key": "n", "order": "ascending"}, "bcaed"),
        ({"key": "n", "order": "descending"}, "deacb"),
        ([{"key": "g", "order": "descending"}, {"key": "n", "order": "ascending"}], "bdcae"),
        ([{"key": "g"}, {"key": "n", "order": "descending"}], "eacdb"),
        ({"key": "name", "order": "descending"}, "edcba"),
        ({"key": "_uniqueid", "order": "descending"}, "edcba"),
    ],
)
def test_sort_forms(rows, sort, expected):
    assert (
        "".join(e["name"] for e in find(rows, results={"list": ["name"], "sort": sort})["entities"])
        == expected
    )
    # Top-level sort works the same.
    assert (
        "".join(e["name"] for e in find(rows, sort=sort, results={"list": ["name"]})["entities"])
        == expected
    )


def test_sort_applies_before_limit_and_offset(rows):
    r = find(
        rows,
        results={"list": ["name"], "sort": {"key": "n", "order": "descending"}},
        limit=2,
        offset=1,
    )
    assert [e["name"] for e in r["entities"]] == ["e", "a"]


def test_sort_by_sequence(rows):
    r = find(
        rows,
        constraints={"name": ["in", ["d", "a", "c"]]},
        results={"list": ["name"], "sort": {"key": "name", "sequence": ["d", "a", "c"]}},
    )
    assert [e["name"] for e in r["entities"]] == ["d", "a", "c"]
    r = find(rows, results={"list": ["n"], "sort": {"key": "n", "sequence": [4, 1]}}, limit=3)
    assert [e["n"] for e in r["entities"]] == [4, 1, 3]


def test_sort_puts_missing_values_together(rows):
    names = [e["name"] for e in find(rows, results={"list": ["name"], "sort": "f"})["entities"]]
    assert names[2:] == ["c", "a", "d"]
    assert sorted(names[:2]) == ["b", "e"]


def test_batch_without_size_reports_total_only(rows):
    r = find(rows, batch={}, results={"list": ["name"]})
    assert r["batch"]["total_elements"] == 5


@pytest.mark.parametrize("batch_id, names", [(0, "ab"), (1, "cd"), (2, "e"), (3, "")])
def test_batches(rows, batch_id, names):
    r = find(rows, batch={"batch_size": 2, "batch_id": batch_id}, results={"list": ["name"]})
    assert "".join(e["name"] for e in r["entities"]) == names
    assert r["returned"] == len(names)
    assert r["batch"] == {
        "batch_id": batch_id,
        "batch_size": 2,
        "total_elements": 5,
        "end": min((batch_id + 1) * 2, 5),
    }


def test_batches_respect_constraints_and_sort(rows):
    r = find(
        rows,
        constraints={"g": ["==", "x"]},
        batch={"batch_size": 2, "batch_id": 1},
        results={"list": ["name"], "sort": {"key": "n", "order": "descending"}},
    )
    assert [e["name"] for e in r["entities"]] == ["c"]
    assert r["batch"]["total_elements"] == 3 and r["batch"]["end"] == 3


@pytest.fixture(scope="module")
def graph(tmp_path_factory, targets):
    """Three authors: a1 wrote b1 b2, a2 wrote b3, a3 wrote nothing."""
    target = targets.new(tmp_path_factory.mktemp("graph"))
    db = open_db(target)
    ok(
        db,
        [
            {"AddEntity": {"_ref": 1, "class": "Author", "properties": {"name": "a1"}}},
            {"AddEntity": {"_ref": 2, "class": "Author", "properties": {"name": "a2"}}},
            {"AddEntity": {"class": "Author", "properties": {"name": "a3"}}},
            {
                "AddEntity": {
                    "class": "Book",
                    "properties": {"title": "b1"},
                    "connect": {"ref": 1, "class": "wrote", "direction": "in"},
                }
            },
            {
                "AddEntity": {
                    "class": "Book",
                    "properties": {"title": "b2"},
                    "connect": {"ref": 1, "class": "wrote", "direction": "in"},
                }
            },
            {
                "AddEntity": {
                    "class": "Book",
                    "properties": {"title": "b3"},
                    "connect": {"ref": 2, "class": "wrote", "direction": "in"},
                }
            },
        ],
    )
    yield db
    db.close()
    targets.drop(target)


def test_group_by_source_keys_by_source_uniqueid(graph):
    r, _ = ok(
        graph,
        [
            {
                "FindEntity": {
                    "_ref": 1,
                    "with_class": "Author",
                    "uniqueids": True,
                    "results": {"list": ["name"]},
                }
            },
            {
                "FindEntity": {
                    "with_class": "Book",
                    "is_connected_to": {"ref": 1, "direction": "out"},
                    "group_by_source": True,
                    "results": {"list": ["title"]},
                }
            },
        ],
    )
    uid = {e["name"]: e["_uniqueid"] for e in body(r, 0)["entities"]}
    grouped = body(r, 1)
    assert grouped["entities"] == {
        uid["a1"]: [{"title": "b1"}, {"title": "b2"}],
        uid["a2"]: [{"title": "b3"}],
        uid["a3"]: [],
    }
    assert grouped["returned"] == 3


def test_group_by_source_in_results_and_empty(graph):
    r, _ = ok(
        graph,
        [
            {
                "FindEntity": {
                    "_ref": 1,
                    "with_class": "Author",
                    "constraints": {"name": ["==", "zz"]},
                }
            },
            {
                "FindEntity": {
                    "with_class": "Book",
                    "is_connected_to": {"ref": 1},
                    "results": {"list": ["title"], "group_by_source": True},
                }
            },
        ],
    )
    assert body(r, 1)["entities"] == {} and body(r, 1)["returned"] == 0


def test_group_by_source_with_count_is_an_error(graph):
    r = fail(
        graph,
        [
            {"FindEntity": {"_ref": 1, "with_class": "Author"}},
            {
                "FindEntity": {
                    "is_connected_to": {"ref": 1},
                    "group_by_source": True,
                    "results": {"count": True},
                }
            },
        ],
    )
    assert "group_by_source" in r["info"]


def test_uniqueids_flag_adds_uniqueid_to_listed(rows):
    r = find(rows, uniqueids=True, results={"list": ["name"]}, limit=2)
    assert [sorted(e) for e in r["entities"]] == [["_uniqueid", "name"]] * 2


def test_entity_blobs_are_refused_cleanly(rows):
    r = fail(rows, [{"FindEntity": {"with_class": "R", "blobs": True}}])
    assert "FindEntity" in r["info"] and "blob" in r["info"]


def test_returned_is_present_when_only_a_ref_is_set(rows):
    r = find(rows, _ref=1)
    assert r == {"status": 0, "returned": 0}


def test_group_by_source_lists_a_shared_object_under_each_source(db):
    """A book by two authors appears in both groups; returned counts it once, like its blobs."""
    ok(
        db,
        [
            {"AddEntity": {"_ref": 1, "class": "Author", "properties": {"name": "x"}}},
            {"AddEntity": {"_ref": 2, "class": "Author", "properties": {"name": "y"}}},
            {"AddEntity": {"_ref": 3, "class": "Book", "properties": {"title": "shared"}}},
            {"AddConnection": {"class": "wrote", "src": 1, "dst": 3}},
            {"AddConnection": {"class": "wrote", "src": 2, "dst": 3}},
        ],
    )
    r, _ = ok(
        db,
        [
            {"FindEntity": {"_ref": 1, "with_class": "Author"}},
            {
                "FindEntity": {
                    "with_class": "Book",
                    "is_connected_to": {"ref": 1},
                    "group_by_source": True,
                    "results": {"list": ["title"]},
                }
            },
        ],
    )
    groups = body(r, 1)["entities"]
    assert list(groups.values()) == [[{"title": "shared"}], [{"title": "shared"}]]
    assert body(r, 1)["returned"] == 1
