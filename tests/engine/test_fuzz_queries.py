"""Property-based: any query thrown at the engine gets an answer, never an exception or an
"internal error" (which would mean a bug slipped past validation), and a failed query leaves
the database exactly as it was.

Queries are built from the commands' own shapes with values that are mostly plausible and
sometimes any JSON at all, so that they get past the first checks and reach the deep code.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lensdb import Database
from lensdb.engine.database import HANDLERS
from lensdb.engine.objects import FAMILIES

from .helpers import jpeg, open_db, snapshot

KEYS = ["id", "name", "n", "d", "_uniqueid", "_label", "width", "_x", "_area"]
OPS = ["==", "!=", ">", ">=", "<", "<=", "in", "not in"]

junk = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)


def mostly(strategy: st.SearchStrategy) -> st.SearchStrategy:
    """The strategy three times in four, any JSON otherwise."""
    return st.one_of(strategy, strategy, strategy, junk)


scalar = (
    st.integers(-2, 6)
    | st.text(max_size=3)
    | st.booleans()
    | st.none()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.just({"_date": "2024-05-06T01:02:03Z"})
)
refs = mostly(st.integers(1, 4))
properties = mostly(
    st.dictionaries(
        st.sampled_from(["id", "name", "n", "d", "tags"]),
        mostly(scalar | st.lists(scalar, max_size=2)),
        max_size=3,
    )
)
predicate = mostly(
    st.one_of(
        st.tuples(st.sampled_from(OPS[:6]), scalar).map(list),
        st.tuples(st.sampled_from(OPS[2:4]), scalar, st.sampled_from(OPS[4:6]), scalar).map(list),
        st.tuples(st.sampled_from(OPS[6:]), st.lists(scalar, max_size=3)).map(list),
    )
)
constraints = mostly(st.dictionaries(st.sampled_from(KEYS + ["any", "all"]), predicate, max_size=2))
results = mostly(
    st.fixed_dictionaries(
        {},
        optional={
            "list": mostly(st.lists(st.sampled_from(KEYS), max_size=3)),
            "all_properties": st.booleans(),
            "count": st.booleans(),
            "sum": st.sampled_from(KEYS),
            "min": st.sampled_from(KEYS),
            "max": st.sampled_from(KEYS),
            "average": st.sampled_from(KEYS),
            "sort": mostly(
                st.sampled_from(KEYS)
                | st.fixed_dictionaries(
                    {"key": st.sampled_from(KEYS)},
                    optional={"order": st.sampled_from(["ascending", "descending"])},
                )
            ),
            "limit": st.integers(-1, 4),
            "group_by_source": st.booleans(),
        },
    )
)
rectangle = mostly(
    st.fixed_dictionaries({"x": scalar, "y": scalar, "width": scalar, "height": scalar})
)
point = st.lists(st.integers(-2, 40) | st.floats(allow_nan=False), min_size=2, max_size=2)
polygons = mostly(st.lists(st.lists(mostly(point), min_size=0, max_size=4), max_size=2))
operations = mostly(
    st.lists(
        st.one_of(
            st.fixed_dictionaries(
                {"type": st.just("resize")},
                optional={"width": scalar, "height": scalar, "scale": scalar},
            ),
            st.fixed_dictionaries(
                {
                    "type": st.just("crop"),
                    "x": scalar,
                    "y": scalar,
                    "width": scalar,
                    "height": scalar,
                }
            ),
            st.fixed_dictionaries(
                {"type": st.sampled_from(["rotate", "flip", "threshold"])},
                optional={
                    "angle": scalar,
                    "resize": st.booleans(),
                    "code": scalar,
                    "value": scalar,
                },
            ),
        ),
        max_size=2,
    )
)
traversal = mostly(
    st.fixed_dictionaries(
        {"ref": refs},
        optional={
            "direction": st.sampled_from(["in", "out", "any"]),
            "connection_class": st.sampled_from(["has", "x"]),
        },
    )
)
connect = mostly(
    st.fixed_dictionaries(
        {"ref": refs},
        optional={
            "class": st.sampled_from(["has", "x"]),
            "direction": st.sampled_from(["in", "out"]),
            "properties": properties,
        },
    )
)

FIND = {
    "_ref": refs,
    "constraints": constraints,
    "results": results,
    "unique": st.booleans(),
    "uniqueids": st.booleans(),
    "blobs": st.booleans(),
    "limit": st.integers(-1, 4),
    "offset": st.integers(-1, 3),
    "is_connected_to": traversal,
    "with_class": st.sampled_from(["E", "F"]),
    "batch": mostly(
        st.fixed_dictionaries(
            {}, optional={"batch_size": st.integers(0, 3), "batch_id": st.integers(-1, 3)}
        )
    ),
    "operations": operations,
    "as_format": st.sampled_from(["jpg", "png", "gif"]),
    "image_ref": refs,
    "coordinates": st.booleans(),
    "labels": st.booleans(),
    "vertices": st.booleans(),
    "in_rectangle": rectangle,
    "with_label": scalar,
}
ADD = {
    "_ref": refs,
    "properties": properties,
    "if_not_found": constraints,
    "connect": connect,
    "class": st.sampled_from(["E", "F", "_X", ""]),
    "image_ref": refs,
    "rectangle": rectangle,
    "polygons": polygons,
    "label": scalar,
    "operations": operations,
    "format": st.sampled_from(["jpg", "png", "tif"]),
    "src": refs,
    "dst": refs,
}
UPDATE = {
    "ref": refs,
    "constraints": constraints,
    "properties": properties,
    "remove_props": mostly(st.lists(st.sampled_from(KEYS), max_size=2)),
    "with_class": st.sampled_from(["E", "F"]),
    "rectangle": rectangle,
    "label": scalar,
}
ADMIN = {
    "index_type": st.sampled_from(["entity", "connection", "x"]),
    "class": st.sampled_from(["E", "has"]),
    "property_key": st.sampled_from(KEYS),
    "refresh": st.booleans(),
}


def body_for(name: str) -> st.SearchStrategy:
    """Bodies made of the parameters this command accepts (all of them for the rest)."""
    pool = (
        FIND
        if name.startswith("Find")
        else ADD
        if name.startswith("Add")
        else UPDATE
        if name.startswith(("Update", "Delete"))
        else ADMIN
    )
    family = FAMILIES.get(name.removeprefix(name[:4] if name.startswith("Find") else name[:3]))
    if family is not None and name.startswith("Find"):
        pool = {k: v for k, v in pool.items() if k in family.find_params}
    elif family is not None and name.startswith("Add"):
        pool = {k: v for k, v in pool.items() if k in family.add_params}
    return mostly(st.fixed_dictionaries({}, optional=pool))


commands = st.sampled_from(sorted(HANDLERS)).flatmap(lambda n: body_for(n).map(lambda b: {n: b}))
queries = mostly(st.lists(mostly(commands), max_size=4))
BLOBS = [jpeg(), b"not an image", b"", b"\xff\xd8\xff\xe0 cut short"]


def consumers(query: object) -> int:
    """How many blobs the query's blob-taking commands expect (a wrong count is tested too)."""
    if not isinstance(query, list):
        return 0
    return sum(
        1
        for c in query
        if isinstance(c, dict) and len(c) == 1 and next(iter(c)) in ("AddImage", "AddBlob")
    )


def _seeded(folder) -> Database:
    db = open_db(folder)
    db.query(
        [
            {"AddEntity": {"_ref": 1, "class": "E", "properties": {"id": 1, "name": "a"}}},
            {
                "AddImage": {
                    "_ref": 2,
                    "properties": {"id": 2},
                    "connect": {"ref": 1, "class": "has"},
                }
            },
            {
                "AddBoundingBox": {
                    "image_ref": 2,
                    "rectangle": {"x": 1, "y": 1, "width": 3, "height": 3},
                }
            },
            {"AddBlob": {"properties": {"id": 3}}},
        ],
        [jpeg(), b"blob"],
    )
    return db


@settings(
    max_examples=800,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(query=queries, picks=st.lists(st.sampled_from(BLOBS), max_size=4), exact=st.booleans())
def test_any_query_gets_an_answer_and_a_failure_changes_nothing(
    tmp_path_factory, targets, query, picks, exact
) -> None:
    if targets.backend in ("postgres-s3", "postgres-rgw"):
        pytest.skip("the same SQL as on postgres; 800 fresh databases and buckets are too slow")
    blobs = (picks * 4)[: consumers(query)] if exact and picks else picks
    folder = targets.new(tmp_path_factory.mktemp("fuzz"))
    db = _seeded(folder)
    try:
        before = snapshot(folder)
        response, out = db.query(query, blobs)
        assert isinstance(response, list | dict)
        assert isinstance(out, list) and all(isinstance(b, bytes) for b in out)
        if isinstance(response, dict):
            assert isinstance(response.get("status"), int) and isinstance(response.get("info"), str)
            assert "internal error" not in response["info"], (query, response)
            assert snapshot(folder) == before
    finally:
        db.close()
        targets.drop(folder)
