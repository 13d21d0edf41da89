"""Look-ups read ahead: a network store takes a query's `if_not_found` and `unique` look-ups in
one round trip before the query runs (`Prefetching`). Every answer must still be what running
the commands one by one gives: each look-up sees what the commands before it added, updated or
deleted. Runs on every backend, so SQLite (which reads one by one) is the reference.

Both backends also hold a query's new rows back and insert them a table at a time, before the
next statement that could read them: later commands must see them, with the ids the rows get."""

from __future__ import annotations

import pytest

from lensdb.errors import Status

from .helpers import body, fail, jpeg, ok, prop_values


def statuses(response: list) -> list[int]:
    return [body(response, i)["status"] for i in range(len(response))]


def add(cls: str, props: dict, if_not_found: object) -> dict:
    return {"AddEntity": {"class": cls, "properties": props, "if_not_found": if_not_found}}


def test_if_not_found_sees_the_adds_before_it_in_the_same_query(db):
    ok(db, [{"AddEntity": {"class": "E", "properties": {"id": 10, "name": "a"}}}])
    response, _ = ok(
        db,
        [
            add("E", {"id": 10}, {"id": ["==", 10]}),  # there before the query
            add("E", {"id": 11, "name": "b"}, {"id": ["==", 11]}),
            add("E", {"id": 11.0}, {"id": ["==", 11.0]}),  # the number just added
            add("E", {"id": "11"}, {"id": ["==", "11"]}),  # a string is not the number 11
            add("E", {"id": 12}, ["$id", "==", 12]),  # the SDK's expression form
            add("F", {"id": 12}, {"id": ["==", 12]}),  # another class
            add("E", {"id": 99}, {"name": ["==", "b"]}),  # matches the second command's row
            add("E", {"id": 13}, {"id": ["==", 13]}),
            add("E", {"id": 13}, {"id": ["==", 13]}),  # the same look-up twice
        ],
    )
    added, exists = Status.OK, Status.EXISTS
    assert statuses(response) == [exists, added, exists, added, added, added, exists, added, exists]
    assert sorted(map(str, prop_values(db, "id", with_class="E"))) == [
        "10",
        "11",
        "11",
        "12",
        "13",
    ]
    assert prop_values(db, "id", with_class="F") == [12]


def test_if_not_found_sees_updates_and_deletes_before_it(db):
    ok(
        db,
        [
            {"AddEntity": {"class": "E", "properties": {"id": 1}}},
            {"AddEntity": {"class": "E", "properties": {"id": 2}}},
        ],
    )
    response, _ = ok(
        db,
        [
            {"FindEntity": {"_ref": 1, "with_class": "E", "constraints": {"id": ["==", 1]}}},
            add("E", {"id": 5}, {"id": ["==", 5]}),  # not there yet: added
            {"UpdateEntity": {"ref": 1, "properties": {"id": 6}}},
            add("E", {"id": 6}, {"id": ["==", 6]}),  # the update made one
            add("E", {"id": 1}, {"id": ["==", 1]}),  # the update took it away
            {"DeleteEntity": {"with_class": "E", "constraints": {"id": ["==", 2]}}},
            add("E", {"id": 2}, {"id": ["==", 2]}),  # deleted above
        ],
    )
    assert statuses(response) == [0, 0, 0, Status.EXISTS, 0, 0, 0]
    assert sorted(prop_values(db, "id", with_class="E")) == [1, 2, 5, 6]


def test_unique_finds_see_images_added_before_them(db):
    """The shape of a BBoxDataCSV batch: each box finds its image (`unique`), twice per image,
    and an image added earlier in the same query is found."""
    ok(db, [{"AddImage": {"properties": {"id": 7}}}], [jpeg()])
    box = {"x": 1, "y": 1, "width": 5, "height": 5}
    commands: list[dict] = []
    for ref, image in enumerate((7, 7, 8, 8), start=1):
        if ref == 3:
            commands.append(
                {"AddImage": {"properties": {"id": 8}, "if_not_found": {"id": ["==", 8]}}}
            )
        commands += [
            {
                "FindImage": {
                    "_ref": ref,
                    "unique": True,
                    "constraints": ["$id", "==", image],
                    "blobs": False,
                }
            },
            {
                "AddBoundingBox": {
                    "image_ref": ref,
                    "rectangle": box,
                    "properties": {"box_id": ref},
                    "if_not_found": ["$box_id", "==", ref],
                }
            },
        ]
    ok(db, commands, [jpeg()])
    for image, boxes in ((7, [1, 2]), (8, [3, 4])):
        response, _ = ok(
            db,
            [
                {"FindImage": {"_ref": 1, "constraints": {"id": ["==", image]}}},
                {"FindBoundingBox": {"image_ref": 1, "results": {"list": ["box_id"]}}},
            ],
        )
        assert sorted(e["box_id"] for e in body(response, 1)["entities"]) == boxes


def test_a_unique_find_that_an_add_before_it_made_ambiguous_fails(db):
    ok(db, [{"AddImage": {"properties": {"id": 9}}}], [jpeg()])
    fail(
        db,
        [
            {"AddImage": {"properties": {"id": 9}}},
            {"AddImage": {"properties": {"id": 9}}},
            {"FindImage": {"_ref": 1, "unique": True, "constraints": {"id": ["==", 9]}}},
            {"FindImage": {"_ref": 2, "unique": True, "constraints": {"id": ["==", 9]}}},
        ],
        [jpeg(), jpeg()],
        status=Status.NOT_UNIQUE,
    )
    assert prop_values(db, "id", "FindImage") == [9]


def test_a_box_batch_reads_its_images_ahead(db, backend, monkeypatch):
    """A BBoxDataCSV batch of 50 boxes: its FindImages only bind a _ref (they read ids only),
    and still come from the look-ups read ahead, so the query makes a handful of statements on
    PostgreSQL instead of one per box (found by bench/scale_ingest.py: 5x slower boxes)."""
    if not backend.startswith("postgres"):
        pytest.skip("SQLite reads in process: there is no round trip to save")
    import psycopg

    ok(db, [{"AddImage": {"properties": {"id": i}}} for i in range(25)], [jpeg()] * 25)
    commands: list[dict] = []
    for k in range(50):
        commands += [
            {
                "FindImage": {
                    "_ref": k + 1,
                    "unique": True,
                    "constraints": ["$id", "==", k // 2],
                    "blobs": False,
                }
            },
            {
                "AddBoundingBox": {
                    "image_ref": k + 1,
                    "rectangle": {"x": 1, "y": 1, "width": 5, "height": 5},
                    "properties": {"box_id": k},
                    "if_not_found": ["$box_id", "==", k],
                }
            },
        ]
    executed = 0
    real = psycopg.Connection.execute

    def counting(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        nonlocal executed
        executed += 1
        return real(self, *args, **kwargs)

    monkeypatch.setattr(psycopg.Connection, "execute", counting)
    ok(db, commands)
    monkeypatch.undo()
    assert executed < 25, (
        f"{executed} statements for 50 boxes: the image look-ups were not read ahead"
    )
    response, _ = ok(db, [{"FindBoundingBox": {"results": {"count": True}}}])
    assert body(response, 0)["count"] == 50


def row_ids(response: list, i: int, key: str = "entities") -> list[int]:
    return sorted(int(e["_uniqueid"].rsplit(".", 1)[1]) for e in body(response, i)[key])


def test_rows_held_back_are_seen_by_later_commands_with_their_ids(db):
    response, _ = ok(
        db,
        [
            {"AddEntity": {"_ref": 1, "class": "E", "properties": {"id": 1}}},
            {"AddEntity": {"_ref": 2, "class": "E", "properties": {"id": 2}}},
            {"AddConnection": {"class": "c", "src": 1, "dst": 2}},
            {"FindEntity": {"with_class": "E", "results": {"list": ["_uniqueid", "id"]}}},
            {"FindConnection": {"src": 1, "results": {"list": ["_uniqueid"]}}},
            {"FindEntity": {"is_connected_to": {"ref": 1}, "results": {"list": ["id"]}}},
        ],
    )
    first = row_ids(response, 3)
    assert len(first) == 2 and len(row_ids(response, 4, "connections")) == 1
    assert [e["id"] for e in body(response, 5)["entities"]] == [2]
    ok(db, [{"DeleteEntity": {"with_class": "E", "constraints": {"id": ["==", 2]}}}])
    response, _ = ok(
        db,
        [
            {"AddEntity": {"class": "E", "properties": {"id": 3}}},
            {"AddEntity": {"class": "E", "properties": {"id": 4}}},
            {"FindEntity": {"with_class": "E", "results": {"list": ["_uniqueid"]}}},
        ],
    )
    later = [i for i in row_ids(response, 2) if i not in first]
    # ids grow in the order the rows were added and are never those of deleted rows
    assert len(later) == 2 and min(later) > max(first)
