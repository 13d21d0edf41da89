"""Property-based: the engine's constraint matches equal a plain-Python reading of the rules."""

from __future__ import annotations

import json
import operator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from lensdb import Database
from lensdb.store.sqlite import SQLiteStore

from .helpers import ok, open_db

KEYS = ("a", "b", "c")
MISSING = object()
ORDER = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}

# A small shared pool makes equal and ordered values common; the wide strategies add breadth.
POOL = [
    0,
    1,
    2,
    -1,
    3,
    1.0,
    0.5,
    2.5,
    -1.5,
    "",
    "a",
    "b",
    "B",
    "ab",
    "é",
    "10",
    "2",
    "$a",
    "$$",
    True,
    False,
]
numbers = st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False)
values = st.sampled_from(POOL) | numbers | st.text(max_size=4)
orderable = (
    st.sampled_from([v for v in POOL if not isinstance(v, bool)]) | numbers | st.text(max_size=3)
)


def kind(v: object) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int | float):
        return "number"
    return "string"


def equal(x: object, v: object) -> bool:
    return kind(x) == kind(v) and x == v


def compare(x: object, op: str, v: object) -> bool:
    if x is MISSING:
        # == null selects objects lacking the key; != with a value includes them.
        return op == "==" if v is None else op == "!="
    if v is None:
        return op == "!="
    if op == "==":
        return equal(x, v)
    if op == "!=":
        return not equal(x, v)
    return kind(x) == kind(v) and ORDER[op](x, v)


def one_of(x: object, vals: list, negate: bool) -> bool:
    hit = None in vals if x is MISSING else any(v is not None and equal(x, v) for v in vals)
    return hit != negate


def evaluate(obj: dict, constraints: dict) -> bool:
    results = []
    for key, pred in constraints.items():
        if key in ("any", "all"):
            inner = [evaluate(obj, {k: p}) for k, p in pred.items()]
            results.append(any(inner) if key == "any" else all(inner))
            continue
        x = obj.get(key, MISSING)
        if len(pred) == 4:
            results.append(compare(x, pred[0], pred[1]) and compare(x, pred[2], pred[3]))
        elif pred[0] in ("in", "not in"):
            results.append(one_of(x, pred[1], pred[0] == "not in"))
        else:
            results.append(compare(x, pred[0], pred[1]))
    return all(results)


@st.composite
def predicates(draw: st.DrawFn) -> list:
    form = draw(st.sampled_from(["eq", "order", "null", "in", "range"]))
    if form == "eq":
        return [draw(st.sampled_from(["==", "!="])), draw(values)]
    if form == "null":
        return [draw(st.sampled_from(["==", "!="])), None]
    if form == "order":
        return [draw(st.sampled_from(list(ORDER))), draw(orderable)]
    if form == "in":
        items = draw(st.lists(values | st.none(), max_size=5))
        return [draw(st.sampled_from(["in", "not in"])), items]
    return [
        draw(st.sampled_from([">", ">="])),
        draw(orderable),
        draw(st.sampled_from(["<", "<="])),
        draw(orderable),
    ]


def constraint_sets(depth: int = 2) -> st.SearchStrategy[dict]:
    leaf = st.dictionaries(st.sampled_from(KEYS), predicates(), min_size=1, max_size=3)
    if depth == 0:
        return leaf
    nested = st.dictionaries(
        st.sampled_from(["any", "all"]), constraint_sets(depth - 1), min_size=1, max_size=2
    )
    return st.builds(lambda a, b: {**a, **b}, leaf | st.just({}), nested) | leaf


def literal(v: object) -> object:
    """A value in the expression-array spelling: "$..." strings escaped, lists as arrays."""
    if isinstance(v, str) and v.startswith("$"):
        return "$" + v
    if isinstance(v, list):
        return {"array": [literal(x) for x in v]}
    return v


def to_expression(constraints: dict, group: str = "all") -> list:
    """The same constraints as aperturedb SDK 0.5 spells them: ["all", ["$key", op, value], ...]."""
    terms: list = []
    for key, pred in constraints.items():
        if key in ("any", "all"):
            terms.append(to_expression(pred, key))
            continue
        pairs = [["$" + key, pred[i], literal(pred[i + 1])] for i in range(0, len(pred), 2)]
        terms += [["all", *pairs]] if group == "any" and len(pairs) > 1 else pairs
    return [group, *terms]


objects = st.lists(st.dictionaries(st.sampled_from(KEYS), values, max_size=3), max_size=12)


@pytest.fixture(scope="module", params=["plain", "indexed"])
def shared_db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, targets):
    if targets.backend in ("postgres-s3", "postgres-rgw"):
        pytest.skip("no blobs here: the same SQL as on postgres")
    target = targets.new(Path(tmp_path_factory.mktemp("prop")))
    db = open_db(target)
    if request.param == "indexed":
        ok(
            db,
            [
                {"CreateIndex": {"index_type": "entity", "class": "H", "property_key": k}}
                for k in KEYS
            ],
        )
    yield db
    db.close()
    targets.drop(target)


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(objs=objects, queries=st.lists(constraint_sets(), min_size=1, max_size=4))
def test_engine_matches_plain_python(shared_db: Database, objs: list[dict], queries: list[dict]):
    db = shared_db
    if not isinstance(db.store, SQLiteStore):  # PostgreSQL refuses U+0000 in text (tested apart)
        assume("\\u0000" not in json.dumps([objs, queries]))
    adds = [{"AddEntity": {"class": "H", "properties": {**o, "i": i}}} for i, o in enumerate(objs)]
    # Each constraint set twice: as a constraints object, and as the SDK's expression array.
    spelled = [form for c in queries for form in (c, to_expression(c))]
    finds = [
        {
            "FindEntity": {
                "with_class": "H",
                "constraints": c,
                "results": {"list": ["i"], "count": True},
            }
        }
        for c in spelled
    ]
    response, _ = db.query([{"DeleteEntity": {"with_class": "H"}}, *adds, *finds])
    assert isinstance(response, list), response
    wanted = [[i for i, o in enumerate(objs) if evaluate(o, c)] for c in queries for _ in (0, 1)]
    for c, want, r in zip(spelled, wanted, response[1 + len(adds) :], strict=True):
        got = sorted(e["i"] for e in r["FindEntity"]["entities"])
        assert got == want, (c, objs)
        assert r["FindEntity"]["count"] == len(want)
