"""The browse page's query builders and parsers, run in-process on the embedded engine."""

from __future__ import annotations

import pytest

from lensdb import Database
from lensdb.gateway.browse.queries import (
    BadFilter,
    GridFilter,
    grid_query,
    image_query,
    label_probe_query,
    parse_constraints,
    parse_grid,
    parse_image,
    parse_label_probe,
)

from .conftest import png


@pytest.fixture
def db(tmp_path):
    with Database(tmp_path / "db") as database:
        r, _ = database.query(
            [
                {"AddImage": {"_ref": 1, "properties": {"dataset": "a", "all": 1}}},
                {
                    "AddBoundingBox": {
                        "image_ref": 1,
                        "rectangle": {"x": 1.5, "y": 2.25, "width": 3, "height": 4},
                        "label": "cat",
                    }
                },
                {"AddImage": {"properties": {"dataset": "b", "all": 2}}},
                {"AddImage": {"properties": {"dataset": "a", "all": 3}}},
            ],
            [png(16, 12)] * 3,
        )
        assert isinstance(r, list), r
        yield database


def page(db: Database, f: GridFilter, after: str | None = None, limit: int = 10, labelled=None):
    q = grid_query(f, after, limit, labelled)
    response, _ = db.query(q.commands)
    assert isinstance(response, list), response
    return parse_grid(q, response, limit)


def test_constraints_text() -> None:
    assert parse_constraints("  ") is None
    assert parse_constraints('{"a": ["==", 1]}') == {"a": ["==", 1]}
    assert parse_constraints('["all", ["$a", "==", 1]]') == ["all", ["$a", "==", 1]]
    with pytest.raises(BadFilter, match="not valid JSON"):
        parse_constraints("{")
    with pytest.raises(BadFilter, match="JSON object"):
        parse_constraints("3")


def test_user_keys_never_collide_with_the_page_filters(db: Database) -> None:
    first = page(db, GridFilter())
    uids = [i.uniqueid for i in first.images]
    assert len(uids) == 3 and not first.more
    # "all" and "dataset" typed by the user, next to the page's own dataset and cursor terms.
    f = GridFilter(constraints={"all": ["<=", 3], "dataset": ["!=", "b"]}, dataset="a")
    assert [i.uniqueid for i in page(db, f).images] == [uids[0], uids[2]]
    assert [i.uniqueid for i in page(db, f, after=uids[0]).images] == [uids[2]]
    f = GridFilter(constraints=["any", ["$all", "==", 1], ["$all", "==", 3]], dataset="a")
    assert [i.uniqueid for i in page(db, f, after=uids[0]).images] == [uids[2]]


def test_label_probe(db: Database) -> None:
    q = label_probe_query("cat", 1)
    labelled = parse_label_probe(q, db.query(q.commands)[0], 1)
    assert labelled.complete and len(labelled.boxes) == 1 and not labelled.polygons
    q = label_probe_query("cat", 0)
    assert not parse_label_probe(q, db.query(q.commands)[0], 0).complete
    q = label_probe_query("dog", 1)
    none = parse_label_probe(q, db.query(q.commands)[0], 1)
    assert none.complete and page(db, GridFilter(label="dog"), labelled=none).images == ()


def test_overlays_keep_float_coordinates(db: Database) -> None:
    q = label_probe_query("cat", 10)
    labelled = parse_label_probe(q, db.query(q.commands)[0], 10)
    first = page(db, GridFilter(label="cat", dataset="a"), limit=1, labelled=labelled)
    (image,) = first.images
    (shape,) = image.shapes
    assert shape.box == (1.5, 2.25, 3.0, 4.0) and shape.label == "cat" and not shape.human
    assert first.more and first.last_read == image.uniqueid
    q = image_query(image.uniqueid)
    response, _ = db.query(q.commands)
    detail = parse_image(q, response)
    assert detail is not None and detail.properties["dataset"] == "a"
    assert detail.image.width == 16 and [s.box for s in detail.image.shapes] == [shape.box]
    q = image_query("2.0.999")
    assert parse_image(q, db.query(q.commands)[0]) is None
