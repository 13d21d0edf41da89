"""GetSchema, CreateIndex, RemoveIndex, GetIndexes, and that indexes are used."""

from __future__ import annotations

import pytest

from lensdb import Database
from lensdb.store.base import Compare, DateValue, Selection
from lensdb.store.sqlite import SQLiteStore

from .helpers import fail, jpeg, ok, one, open_db, snapshot


def schema(db, **params):
    return one(db, {"GetSchema": params})


def index(kind="entity", cls="P", key="k"):
    return {"index_type": kind, "class": cls, "property_key": key}


def test_empty_database_schema_is_null(db):
    assert schema(db) == {"status": 0, "entities": None, "connections": None}
    assert schema(db, refresh=True)["entities"] is None


def test_schema_classes_counts_and_types(db):
    ok(
        db,
        [
            {
                "AddEntity": {
                    "_ref": 1,
                    "class": "P",
                    "properties": {
                        "n": 1,
                        "s": "a",
                        "b": True,
                        "d": {"_date": "2020-01-01"},
                        "j": {"a": [1]},
                    },
                }
            },
            {"AddEntity": {"_ref": 2, "class": "P", "properties": {"n": 2.5}}},
            {"AddEntity": {"class": "Empty"}},
            {"AddImage": {"_ref": 3, "properties": {"id": 1}}},
            {"AddConnection": {"class": "has", "src": 1, "dst": 3, "properties": {"w": 0.5}}},
            {"AddConnection": {"class": "has", "src": 2, "dst": 3}},
            {
                "AddBoundingBox": {
                    "image_ref": 3,
                    "rectangle": {"x": 0, "y": 0, "width": 1, "height": 1},
                }
            },
        ],
        [jpeg()],
    )
    s = schema(db)
    ents = s["entities"]
    assert ents["returned"] == len(ents["classes"]) == 4
    p = ents["classes"]["P"]
    assert p["matched"] == 2
    assert p["properties"] == {
        "n": [2, False, "Number"],
        "s": [1, False, "String"],
        "b": [1, False, "Boolean"],
        "d": [1, False, "DateTime"],
        "j": [1, False, "JSON"],
    }
    assert ents["classes"]["Empty"] == {"matched": 1, "properties": None}
    assert ents["classes"]["_Image"]["properties"] == {
        "id": [1, False, "Number"],
        "width": [1, False, "Number"],
        "height": [1, False, "Number"],
    }
    # System properties of regions stay out of the schema.
    assert ents["classes"]["_BoundingBox"] == {"matched": 1, "properties": None}
    conns = s["connections"]["classes"]
    assert s["connections"]["returned"] == 2
    assert conns["has"] == {
        "src": "P",
        "dst": "_Image",
        "matched": 2,
        "properties": {"w": [1, False, "Number"]},
    }
    assert conns["_BoundingBoxToImage"]["src"] == "_BoundingBox"
    assert conns["_BoundingBoxToImage"]["dst"] == "_Image"


def test_schema_type_parameter(db):
    ok(
        db,
        [
            {"AddEntity": {"_ref": 1, "class": "A"}},
            {"AddEntity": {"_ref": 2, "class": "B"}},
            {"AddConnection": {"class": "ab", "src": 1, "dst": 2}},
        ],
    )
    assert set(schema(db, type="entities")) == {"status", "entities"}
    assert set(schema(db, type="connections")) == {"status", "connections"}
    assert set(schema(db, type="both")) == {"status", "entities", "connections"}
    fail(db, [{"GetSchema": {"type": "all"}}])


def test_schema_omits_classes_whose_objects_are_gone(db):
    ok(db, [{"AddEntity": {"class": "A"}}, {"AddEntity": {"class": "B"}}])
    one(db, {"DeleteEntity": {"with_class": "A"}})
    assert list(schema(db)["entities"]["classes"]) == ["B"]


def test_create_index_then_exists_then_remove(db):
    assert one(db, {"CreateIndex": index()}) == {"status": 0}
    again = one(db, {"CreateIndex": index()})
    assert again["status"] == 2
    assert one(db, {"RemoveIndex": index()}) == {"status": 0}
    assert one(db, {"CreateIndex": index()}) == {"status": 0}


def test_indexed_flags_follow_create_and_remove(db):
    # The SDK indexes classes that have no objects yet.
    one(db, {"CreateIndex": index(cls="_Image", key="id")})
    one(db, {"CreateIndex": index(cls="P", key="k")})
    one(db, {"CreateIndex": index(kind="connection", cls="rel", key="w")})
    assert schema(db)["entities"] is None
    ok(
        db,
        [
            {"AddImage": {"properties": {"id": 1}}},
            {"AddEntity": {"_ref": 1, "class": "P", "properties": {"k": 1, "other": 2}}},
            {"AddEntity": {"_ref": 2, "class": "P"}},
            {"AddConnection": {"class": "rel", "src": 1, "dst": 2, "properties": {"w": 3}}},
        ],
        [jpeg()],
    )
    s = schema(db)
    assert s["entities"]["classes"]["_Image"]["properties"]["id"] == [1, True, "Number"]
    assert s["entities"]["classes"]["_Image"]["properties"]["width"][1] is False
    assert s["entities"]["classes"]["P"]["properties"] == {
        "k": [1, True, "Number"],
        "other": [1, False, "Number"],
    }
    assert s["connections"]["classes"]["rel"]["properties"]["w"] == [1, True, "Number"]
    one(db, {"RemoveIndex": index(cls="P", key="k")})
    assert schema(db)["entities"]["classes"]["P"]["properties"]["k"] == [1, False, "Number"]


def test_get_indexes(db):
    ok(
        db,
        [
            {"CreateIndex": index(cls="P", key="k")},
            {"CreateIndex": index(kind="connection", cls="rel", key="w")},
        ],
    )
    r = one(db, {"GetIndexes": {}})
    got = {(i["target"], i["class"], i["property"]) for i in r["indexes"]}
    assert got == {("entity", "P", "k"), ("connection", "rel", "w")}
    r = one(db, {"GetIndexes": {"target": "connection"}})
    assert [i["class"] for i in r["indexes"]] == ["rel"]


@pytest.mark.parametrize(
    "params, fragment",
    [
        ({"class": "P"}, "property_key"),
        ({"property_key": "k"}, "class"),
        ({"index_type": "node", "class": "P", "property_key": "k"}, "index_type"),
        ({"index_type": "entity", "class": "P", "property_key": 5}, "property_key"),
    ],
)
def test_bad_index_commands(db, params, fragment):
    assert fragment in fail(db, [{"CreateIndex": params}])["info"]


def test_index_creation_rolls_back_with_its_query(db, folder):
    before = snapshot(folder)
    fail(db, [{"CreateIndex": index()}, {"FindEntity": {"is_connected_to": {"ref": 5}}}])
    assert snapshot(folder) == before
    assert one(db, {"CreateIndex": index()}) == {"status": 0}


def test_indexes_survive_reopen(folder):
    with open_db(folder) as db:
        one(db, {"CreateIndex": index()})
    with open_db(folder) as db:
        assert one(db, {"CreateIndex": index()})["status"] == 2


def uses_index(db: Database, sel: Selection) -> bool:
    if isinstance(db.store, SQLiteStore):
        return "USING INDEX pix_" in " | ".join(db.store.plan_for(sel))
    # 50 rows are too few for PostgreSQL to prefer any index; asked to avoid a sequential scan,
    # it tells whether the predicate matches an index expression at all. The test below checks
    # the planner's own choice on a table large enough. Statistics are made fresh first: a test
    # database is recycled, and statistics an earlier test left (say, of a table where the
    # predicate matched most rows) made the planner take the class index instead (CI, once).
    import psycopg

    with psycopg.connect(db.target.url, autocommit=True) as conn:
        conn.execute("ANALYZE objects")
    plan = db.store.plan_for(sel, force_index=True)
    return any("Index Cond" in line and "props" in line for line in plan)


@pytest.mark.parametrize(
    "where",
    [
        Compare("k", "==", 5),
        Compare("k", ">=", 45),  # a few of the 50 rows: with fresh statistics, worth an index
        Compare("k", "<", "0"),
    ],
)
def test_constraint_lookups_use_the_index(db, where):
    ok(db, [{"AddEntity": {"class": "P", "properties": {"k": i}}} for i in range(50)])
    sel = Selection(classes=["P"], where=where)
    assert not uses_index(db, sel)
    one(db, {"CreateIndex": index()})
    assert uses_index(db, sel)
    # Another key does not get the index.
    assert not uses_index(db, Selection(classes=["P"], where=Compare("other", "==", 5)))
    one(db, {"RemoveIndex": index()})
    assert not uses_index(db, sel)


def test_date_lookups_use_the_index(db):
    ok(
        db,
        [
            {"AddEntity": {"class": "P", "properties": {"k": {"_date": f"2020-01-{d:02d}"}}}}
            for d in range(1, 29)
        ],
    )
    one(db, {"CreateIndex": index()})
    assert uses_index(db, Selection(classes=["P"], where=Compare("k", ">", DateValue(1.6e9))))


def test_indexed_lookup_through_the_engine_finds_the_same_objects(db):
    ok(db, [{"AddEntity": {"class": "P", "properties": {"k": i % 7, "i": i}}} for i in range(100)])
    query = {
        "FindEntity": {
            "with_class": "P",
            "constraints": {"k": ["==", 3]},
            "results": {"list": ["i"]},
        }
    }
    before = one(db, query)["entities"]
    one(db, {"CreateIndex": index()})
    assert one(db, query)["entities"] == before and len(before) == 14


def test_postgres_planner_picks_the_index_by_itself(db, backend):
    """Among 20,000 rows, EXPLAIN shows PostgreSQL choosing CreateIndex's expression index for
    a number, a string range and a date, with no planner settings changed."""
    if backend != "postgres":
        pytest.skip("EXPLAIN of PostgreSQL's planner")
    rows = [
        {
            "AddEntity": {
                "class": "P",
                "properties": {
                    "k": i,
                    "s": f"name{i:05}",
                    "at": {"_date": f"2020-01-01T00:00:{i % 60:02}Z"},
                },
            }
        }
        for i in range(20_000)
    ]
    for start in range(0, len(rows), 5000):
        ok(db, rows[start : start + 5000])
    ok(db, [{"CreateIndex": index(key=k)} for k in ("k", "s", "at")])
    with db.store.pool.connection() as conn:
        conn.execute("ANALYZE objects")
    for where in (
        Compare("k", "==", 1234),
        Compare("s", ">=", "name19990"),
        Compare("at", "<", DateValue(1577836801.0)),
    ):
        plan = " | ".join(db.store.plan_for(Selection(classes=["P"], where=where)))
        assert "pix_" in plan, (where, plan)
    assert one(
        db,
        {
            "FindEntity": {
                "with_class": "P",
                "constraints": {"k": ["==", 1234]},
                "results": {"list": ["s"]},
            }
        },
    )["entities"] == [{"s": "name01234"}]
