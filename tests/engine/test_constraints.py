"""`constraints`: every operator, ranges, any/all, the null rules, types, _uniqueid, dates."""

from __future__ import annotations

import pytest

from .helpers import body, entities, fail, ok, one, open_db, png, snapshot

# name -> properties; "none" lacks every property.
PEOPLE = {
    "ann": {"age": 30, "score": 1.5, "city": "Lyon", "vip": True},
    "bob": {"age": 40, "score": 2, "city": "Oslo", "vip": False},
    "cid": {"age": 50, "city": "paris"},
    "dee": {"age": "forty", "score": -1},
    "none": {},
}


def add_people(db):
    ok(
        db,
        [{"AddEntity": {"class": "P", "properties": {"name": n, **p}}} for n, p in PEOPLE.items()],
    )
    return db


@pytest.fixture(scope="module")
def people(tmp_path_factory, targets):
    """Shared by the read-only tests of this module."""
    target = targets.new(tmp_path_factory.mktemp("people"))
    with open_db(target) as db:
        yield add_people(db)
    targets.drop(target)


def names(db, constraints, cls="P"):
    found = entities(db, with_class=cls, constraints=constraints, results={"list": ["name"]})
    return sorted(e["name"] for e in found)


@pytest.mark.parametrize(
    "constraints, expected",
    [
        ({"age": ["==", 40]}, ["bob"]),
        ({"age": ["==", 40.0]}, ["bob"]),
        ({"age": ["!=", 40]}, ["ann", "cid", "dee", "none"]),
        ({"age": ["<", 40]}, ["ann"]),
        ({"age": ["<=", 40]}, ["ann", "bob"]),
        ({"age": [">", 40]}, ["cid"]),
        ({"age": [">=", 40]}, ["bob", "cid"]),
        ({"score": [">", 1]}, ["ann", "bob"]),
        ({"score": ["==", 2.0]}, ["bob"]),
        ({"score": ["<", 1.5]}, ["dee"]),
        ({"city": ["==", "Oslo"]}, ["bob"]),
        ({"city": [">=", "Oslo"]}, ["bob", "cid"]),  # lexicographic: "O" < "p"
        ({"city": ["<", "Oslo"]}, ["ann"]),
        ({"city": ["!=", "Oslo"]}, ["ann", "cid", "dee", "none"]),
        ({"vip": ["==", True]}, ["ann"]),
        ({"vip": ["==", False]}, ["bob"]),
        ({"vip": ["!=", True]}, ["bob", "cid", "dee", "none"]),
        ({"age": ["in", [30, 50, 99]]}, ["ann", "cid"]),
        ({"age": ["in", [30.0]]}, ["ann"]),
        ({"age": ["in", []]}, []),
        ({"age": ["not in", [30, 50]]}, ["bob", "dee", "none"]),
        ({"age": ["not in", []]}, ["ann", "bob", "cid", "dee", "none"]),
        ({"city": ["in", ["Lyon", "paris"]]}, ["ann", "cid"]),
        ({"name": ["in", ["ann", "bob"]], "age": [">", 35]}, ["bob"]),
    ],
)
def test_operators(people, constraints, expected):
    assert names(people, constraints) == expected


@pytest.mark.parametrize(
    "constraints, expected",
    [
        ({"age": [">=", 30, "<", 50]}, ["ann", "bob"]),
        ({"age": [">", 30, "<=", 50]}, ["bob", "cid"]),
        ({"age": [">", 30, "<", 40]}, []),
        ({"age": [">=", 40, "<=", 40]}, ["bob"]),
        ({"city": [">=", "L", "<", "P"]}, ["ann", "bob"]),
        ({"age": ["<=", 40]}, ["ann", "bob"]),
    ],
)
def test_ranges(people, constraints, expected):
    assert names(people, constraints) == expected


@pytest.mark.parametrize(
    "constraints, expected",
    [
        ({"any": {"age": ["==", 30], "city": ["==", "Oslo"]}}, ["ann", "bob"]),
        ({"all": {"age": [">", 20], "city": ["==", "Oslo"]}}, ["bob"]),
        ({"any": {"age": ["==", 999]}}, []),
        (
            {"all": {"age": [">", 0], "any": {"city": ["==", "Lyon"], "score": ["==", 2]}}},
            ["ann", "bob"],
        ),
        (
            {"any": {"all": {"age": [">", 35], "vip": ["==", False]}, "city": ["==", "paris"]}},
            ["bob", "cid"],
        ),
        ({"name": ["!=", "bob"], "any": {"age": ["<", 45], "score": ["<", 0]}}, ["ann", "dee"]),
    ],
)
def test_any_and_all(people, constraints, expected):
    assert names(people, constraints) == expected


@pytest.mark.parametrize(
    "constraints, expected",
    [
        # Label Studio selects objects lacking a property with == null.
        ({"score": ["==", None]}, ["cid", "none"]),
        ({"score": ["!=", None]}, ["ann", "bob", "dee"]),
        # != and not in with a value include objects lacking the property ...
        ({"score": ["!=", 2]}, ["ann", "cid", "dee", "none"]),
        ({"vip": ["not in", [True]]}, ["bob", "cid", "dee", "none"]),
        # ... while <, <=, >, >=, ==, in with a value never match a missing property.
        ({"vip": ["==", False]}, ["bob"]),
        ({"score": ["<", 100]}, ["ann", "bob", "dee"]),
        ({"score": ["<=", 100]}, ["ann", "bob", "dee"]),
        ({"score": [">", -100]}, ["ann", "bob", "dee"]),
        ({"score": [">=", -100]}, ["ann", "bob", "dee"]),
        ({"score": ["in", [1.5, 2, -1]]}, ["ann", "bob", "dee"]),
        ({"never": ["==", None]}, ["ann", "bob", "cid", "dee", "none"]),
        ({"never": ["!=", None]}, []),
        ({"never": ["!=", 1]}, ["ann", "bob", "cid", "dee", "none"]),
        ({"never": ["<", 1]}, []),
        ({"never": ["in", [1, "a"]]}, []),
        ({"never": ["not in", [1]]}, ["ann", "bob", "cid", "dee", "none"]),
    ],
)
def test_null_rules(people, constraints, expected):
    assert names(people, constraints) == expected


@pytest.mark.parametrize(
    "constraints, expected",
    [
        # A string value never compares with a number, nor a number with a string...
        ({"age": ["<", 100]}, ["ann", "bob", "cid"]),
        ({"age": [">", "a"]}, ["dee"]),
        ({"age": ["==", "forty"]}, ["dee"]),
        ({"age": ["in", [40, "forty"]]}, ["bob", "dee"]),
        # ... booleans are not numbers ...
        ({"vip": ["==", 1]}, []),
        ({"vip": ["in", [0, 1]]}, []),
        ({"age": ["==", True]}, []),
        # ... and under != a value of another type counts as different.
        ({"age": ["!=", "forty"]}, ["ann", "bob", "cid", "none"]),
        ({"city": ["!=", 5]}, ["ann", "bob", "cid", "dee", "none"]),
        ({"age": ["not in", ["forty", 30]]}, ["bob", "cid", "none"]),
    ],
)
def test_type_mismatches(people, constraints, expected):
    assert names(people, constraints) == expected


def test_uniqueid_operators(people):
    found = entities(people, with_class="P", uniqueids=True, results={"list": ["name"]})
    uid = {e["name"]: e["_uniqueid"] for e in found}
    all_names = sorted(PEOPLE)
    assert names(people, {"_uniqueid": ["==", uid["bob"]]}) == ["bob"]
    assert names(people, {"_uniqueid": ["!=", uid["bob"]]}) == [n for n in all_names if n != "bob"]
    assert names(people, {"_uniqueid": ["in", [uid["ann"], uid["cid"], "0.0.0"]]}) == ["ann", "cid"]
    assert names(people, {"_uniqueid": ["not in", [uid["ann"], uid["cid"]]]}) == [
        "bob",
        "dee",
        "none",
    ]
    assert names(people, {"_uniqueid": ["==", "0.0.0"]}) == []
    assert names(people, {"_uniqueid": ["!=", "0.0.0"]}) == all_names
    assert names(people, {"_uniqueid": ["==", "garbage"]}) == []
    assert names(people, {"_uniqueid": ["in", []]}) == []
    assert names(people, {"_uniqueid": ["==", uid["bob"]], "age": ["==", 30]}) == []


def test_uniqueid_ordering_pages_by_insertion(people):
    """`_uniqueid` with < <= > >= compares row ids within one family: keyset paging."""
    found = entities(people, with_class="P", uniqueids=True, results={"list": ["name"]})
    order = [e["name"] for e in found]  # insertion order
    uid = {e["name"]: e["_uniqueid"] for e in found}
    assert order == list(PEOPLE)
    mid = uid["bob"]
    assert names(people, {"_uniqueid": [">", mid]}) == sorted(order[2:])
    assert names(people, {"_uniqueid": [">=", mid]}) == sorted(order[1:])
    assert names(people, {"_uniqueid": ["<", mid]}) == ["ann"]
    assert names(people, {"_uniqueid": ["<=", mid]}) == ["ann", "bob"]
    assert names(people, {"_uniqueid": [">", uid["ann"], "<", uid["dee"]]}) == ["bob", "cid"]
    # Pages of two, each starting after the last uniqueid of the previous page.
    pages, after = [], None
    while True:
        where = {"_uniqueid": [">", after]} if after else {}
        page = entities(
            people,
            with_class="P",
            constraints=where,
            uniqueids=True,
            results={"list": ["name"], "limit": 2},
        )
        if not page:
            break
        pages.append([e["name"] for e in page])
        after = page[-1]["_uniqueid"]
    assert pages == [order[0:2], order[2:4], order[4:]]
    # Another family's uniqueid orders nothing of this one: "2.0.1" names an image.
    assert names(people, {"_uniqueid": [">", "2.0.1"]}) == []
    assert names(people, {"_uniqueid": ["<", "9.0.1"]}) == []


@pytest.mark.parametrize("value", ["garbage", "0.0.0", 17])
def test_uniqueid_ordering_needs_a_uniqueid(people, value):
    r = fail(people, [{"FindEntity": {"constraints": {"_uniqueid": [">", value]}}}])
    assert "_uniqueid" in r["info"] and "2.0.17" in r["info"]


@pytest.fixture(scope="module")
def dated(tmp_path_factory, targets):
    target = targets.new(tmp_path_factory.mktemp("dated"))
    db = open_db(target)
    ok(
        db,
        [
            {"AddEntity": {"class": "E", "properties": {"name": n, "at": {"_date": d}}}}
            for n, d in [
                ("iso_utc", "2017-08-07T17:00:00Z"),
                ("ctime", "Mon Aug 7 10:59:24 PDT 2017"),  # 2017-08-07T17:59:24Z
                ("iso_offset", "2017-08-07T20:00:00+02:00"),  # 18:00Z
                ("micro", "2017-08-07T18:00:00.500000+00:00"),
                ("naive", "2020-01-01T00:00:00"),
            ]
        ]
        + [{"AddEntity": {"class": "E", "properties": {"name": "text", "at": "2017"}}}],
    )
    yield db
    db.close()
    targets.drop(target)


@pytest.mark.parametrize(
    "constraints, expected",
    [
        (
            {"at": [">", {"_date": "2017-08-07T17:30:00Z"}]},
            ["ctime", "iso_offset", "micro", "naive"],
        ),
        ({"at": ["<", {"_date": "Mon Aug 7 11:00:00 PDT 2017"}]}, ["ctime", "iso_utc"]),
        ({"at": ["==", {"_date": "2017-08-07T17:59:24+00:00"}]}, ["ctime"]),
        ({"at": ["==", {"_date": "2017-08-07T18:00:00Z"}]}, ["iso_offset"]),
        (
            {"at": [">=", {"_date": "2017-08-07T18:00:00Z"}, "<", {"_date": "2018-01-01"}]},
            ["iso_offset", "micro"],
        ),
        (
            {
                "at": [
                    "in",
                    [{"_date": "2017-08-07T19:00:00+02:00"}, {"_date": "2020-01-01T00:00:00Z"}],
                ]
            },
            ["iso_utc", "naive"],
        ),
        (
            {"at": ["!=", {"_date": "2017-08-07T17:00:00Z"}]},
            ["ctime", "iso_offset", "micro", "naive", "text"],
        ),
        # A date never compares with a string, nor a string with a date.
        ({"at": ["==", "2017"]}, ["text"]),
        ({"at": [">", "0"]}, ["text"]),
    ],
)
def test_dates_compare_chronologically(dated, constraints, expected):
    assert names(dated, constraints, cls="E") == expected


def test_dates_sort_chronologically(dated):
    got = entities(
        dated,
        with_class="E",
        constraints={"at": ["!=", "2017"]},
        results={"list": ["name"], "sort": "at"},
    )
    assert [e["name"] for e in got] == ["iso_utc", "ctime", "iso_offset", "micro", "naive"]


@pytest.mark.parametrize(
    "constraints, fragment",
    [
        ({"age": "30"}, "must be an array"),
        ({"age": ["=="]}, "size 2 or 4"),
        ({"age": ["==", 1, 2]}, "size 2 or 4"),
        ({"age": ["==", 1, "<", 2, 3]}, "size 2 or 4"),
        ({"age": ["~", 1]}, "operator"),
        ({"age": ["==", 1, "<", 2]}, "range"),
        ({"age": ["in", [1], "<", 2]}, "range"),
        ({"age": ["in", 5]}, "list"),
        ({"age": ["<", None]}, "null"),
        ({"vip": [">", True]}, "boolean"),
        ({"age": ["==", [1]]}, "age"),
        ({"age": ["==", {"x": 1}]}, "age"),
        ({"at": ["==", {"_date": "not a date"}]}, "date"),
        ({"_uniqueid": ["==", 5]}, "_uniqueid"),
        ([["age", "==", 1]], "constraints"),
    ],
)
def test_malformed_constraints_fail_with_a_clear_message(people, constraints, fragment):
    before = snapshot(people.target)
    r = fail(people, [{"FindEntity": {"constraints": constraints}}])
    assert fragment in r["info"] and "FindEntity" in r["info"]
    r = fail(people, [{"DeleteEntity": {"constraints": constraints}}])
    assert snapshot(people.target) == before


def test_constraints_apply_to_update_and_delete(db):
    people = add_people(db)
    r, _ = ok(
        people,
        [
            {
                "UpdateEntity": {
                    "with_class": "P",
                    "constraints": {"score": ["==", None]},
                    "properties": {"score": 0},
                }
            },
            {"DeleteEntity": {"with_class": "P", "constraints": {"age": ["not in", [30, 40]]}}},
        ],
    )
    assert body(r, 0)["count"] == 2 and body(r, 1)["count"] == 3
    assert names(people, {}) == ["ann", "bob"]


def test_large_in_lists(db):
    ok(db, [{"AddEntity": {"class": "N", "properties": {"i": i, "s": str(i)}}} for i in range(300)])
    wanted = list(range(0, 300, 3)) + [10_000 + i for i in range(500)]
    got = entities(db, constraints={"i": ["in", wanted]}, results={"count": True, "list": ["i"]})
    assert sorted(e["i"] for e in got) == list(range(0, 300, 3))
    r = one(
        db,
        {
            "FindEntity": {
                "constraints": {"s": ["not in", [str(i) for i in range(250)]]},
                "results": {"count": True},
            }
        },
    )
    assert r["count"] == 50


def test_uniqueid_family_prefix_is_part_of_the_id(folder):
    """ "2.0.N" is image row N: it names neither entity row N nor connection N, and the SDK's
    wipe sentinel "0.0.0" names nothing."""
    with open_db(folder) as db:
        ok(
            db,
            [
                {"AddEntity": {"class": "P", "_ref": 1}},
                {"AddImage": {"_ref": 2}},
                {"AddConnection": {"class": "sees", "src": 1, "dst": 2}},
            ],
            [png(8, 8)],
        )
        ent = entities(db, uniqueids=True, constraints={"_uniqueid": ["==", "1.0.1"]})
        assert [e["_uniqueid"] for e in ent] == ["1.0.1"]
        image_uid = entities(db, "FindImage", uniqueids=True)[0]["_uniqueid"]
        row = image_uid.split(".")[2]
        for wrong in (f"1.0.{row}", f"9.0.{row}", "2.0.1", "7.0.1"):
            assert entities(db, uniqueids=True, constraints={"_uniqueid": ["==", wrong]}) == []
        conn = one(db, {"FindConnection": {"uniqueids": True}})["connections"][0]["_uniqueid"]
        assert conn.startswith("9.0.")
        found = one(
            db,
            {
                "FindConnection": {
                    "uniqueids": True,
                    "constraints": {"_uniqueid": ["in", [conn, image_uid]]},
                }
            },
        )
        assert [c["_uniqueid"] for c in found["connections"]] == [conn]
        rest = entities(db, uniqueids=True, constraints=["$_uniqueid", "!=", image_uid])
        assert [e["_uniqueid"] for e in rest] == ["1.0.1"]
        everything = entities(db, uniqueids=True, constraints={"_uniqueid": ["!=", "0.0.0"]})
        assert len(everything) == 2
