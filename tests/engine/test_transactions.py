"""A query is one transaction: all of it takes effect, blobs included, or none of it does."""

from __future__ import annotations

import threading
import time

import pytest

from lensdb import Database

from .helpers import body, fail, intents, jpeg, ok, one, open_db, pack_files, snapshot

FOUR_WRITES = [
    {"AddImage": {"_ref": 1, "properties": {"id": 100}}},
    {"AddBlob": {"_ref": 2, "properties": {"id": 101}}},
    {
        "AddEntity": {
            "_ref": 3,
            "class": "E",
            "properties": {"id": 102},
            "connect": {"ref": 1, "class": "shows"},
        }
    },
    {"AddBoundingBox": {"image_ref": 1, "rectangle": {"x": 0, "y": 0, "width": 4, "height": 4}}},
]
FOUR_BLOBS = [jpeg(), b"raw bytes"]


@pytest.fixture
def seeded(db):
    ok(
        db,
        [
            {"AddImage": {"_ref": 1, "properties": {"id": 1}}},
            {"AddEntity": {"_ref": 2, "class": "E", "properties": {"id": 2, "v": "old"}}},
            {"AddConnection": {"class": "c", "src": 2, "dst": 1}},
            {"AddBlob": {"properties": {"id": 3}}},
        ],
        [jpeg(), b"seed"],
    )
    return db


@pytest.mark.parametrize(
    "fifth, status",
    [
        ({"DeleteEntity": {"ref": 42}}, -1),
        ({"FindEntity": {"with_class": "E", "unique": True}}, 3),
        ({"AddEntity": {"class": "E", "properties": {"bad": {"_date": "never"}}}}, -1),
        (
            {
                "AddBoundingBox": {
                    "image_ref": 2,
                    "rectangle": {"x": 0, "y": 0, "width": 1, "height": 1},
                }
            },
            -1,
        ),
        (
            {
                "FindImage": {
                    "blobs": True,
                    "operations": [{"type": "crop", "x": 0, "y": 0, "width": 999, "height": 1}],
                }
            },
            -1,
        ),
        ({"AddConnection": {"class": "c", "src": 3, "dst": 3, "properties": {"_x": 1}}}, -1),
    ],
)
def test_failure_in_command_5_leaves_no_trace(seeded, folder, fifth, status):
    before = snapshot(folder)
    r = fail(seeded, [*FOUR_WRITES, fifth], FOUR_BLOBS, status=status)
    assert "command 5 of 5" in r["info"] and r.get("FailedCommand") == next(iter(fifth))
    assert snapshot(folder) == before
    assert intents(folder) == []
    # The database keeps working, and nothing of the failed query is visible.
    assert (
        one(
            seeded, {"FindEntity": {"constraints": {"id": [">=", 100]}, "results": {"count": True}}}
        )["count"]
        == 0
    )


def test_failing_image_in_command_5_leaves_no_trace(seeded, folder):
    before = snapshot(folder)
    fail(seeded, [*FOUR_WRITES, {"AddImage": {}}], [*FOUR_BLOBS, b"not an image"])
    assert snapshot(folder) == before


def test_updates_and_deletes_roll_back_too(seeded, folder):
    before = snapshot(folder)
    files = pack_files(folder)
    fail(
        seeded,
        [
            {
                "UpdateEntity": {
                    "with_class": "E",
                    "properties": {"v": "new"},
                    "remove_props": ["id"],
                }
            },
            {"DeleteImage": {}},
            {"DeleteBlob": {}},
            {"DeleteConnection": {}},
            {"CreateIndex": {"index_type": "entity", "class": "E", "property_key": "v"}},
            {"DeleteEntity": {"ref": 7}},
        ],
    )
    assert snapshot(folder) == before
    assert pack_files(folder) == files
    r, blobs = ok(seeded, [{"FindImage": {"blobs": True}}, {"FindBlob": {"blobs": True}}])
    assert len(blobs) == 2 and blobs[1] == b"seed"


def test_unique_violation_is_a_status_3_dict(seeded, folder):
    ok(seeded, [{"AddEntity": {"class": "E", "properties": {"id": 2}}}])
    before = snapshot(folder)
    r, out = seeded.query(
        [
            {"AddEntity": {"class": "E"}},
            {"FindEntity": {"with_class": "E", "unique": True, "constraints": {"id": ["==", 2]}}},
        ]
    )
    assert isinstance(r, dict) and r["status"] == 3 and out == []
    assert "FindEntity" in r["info"]
    assert snapshot(folder) == before


def test_a_successful_query_keeps_everything(seeded, folder):
    files = set(pack_files(folder))
    r, _ = ok(seeded, FOUR_WRITES, FOUR_BLOBS)
    assert [body(r, i)["status"] for i in range(4)] == [0, 0, 0, 0]
    assert len(set(pack_files(folder)) - files) == 1  # one pack for the query's two blobs
    r, blobs = ok(
        seeded,
        [
            {"FindImage": {"_ref": 1, "constraints": {"id": ["==", 100]}, "blobs": True}},
            {"FindBlob": {"constraints": {"id": ["==", 101]}, "blobs": True}},
            {
                "FindEntity": {
                    "with_class": "E",
                    "is_connected_to": {"ref": 1},
                    "results": {"list": ["id"]},
                }
            },
            {"FindBoundingBox": {"image_ref": 1, "results": {"count": True}}},
        ],
    )
    assert blobs[0] == FOUR_BLOBS[0] and blobs[1] == FOUR_BLOBS[1]
    assert body(r, 2)["entities"] == [{"id": 102}] and body(r, 3)["count"] == 1


def test_many_failed_blob_queries_leave_no_files(db, folder):
    for i in range(20):
        fail(
            db,
            [{"AddBlob": {}}, {"AddImage": {}}, {"DeleteEntity": {"ref": i + 1}}],
            [b"x" * 1000, jpeg()],
        )
    assert pack_files(folder) == []
    assert intents(folder) == []
    assert snapshot(folder)["objects"] == []


def test_readers_never_see_half_a_query(folder):
    """While a writer adds pairs of objects in single queries, readers always count even numbers."""
    db = open_db(folder)
    stop = threading.Event()
    seen: list[int] = []
    errors: list[object] = []

    def read() -> None:
        while not stop.is_set():
            r, _ = db.query(
                [
                    {"FindEntity": {"with_class": "Pair", "results": {"count": True}}},
                    {"FindBlob": {"results": {"count": True}}},
                ]
            )
            if not isinstance(r, list):
                errors.append(r)
                return
            seen.append(body(r, 0)["count"])
            if body(r, 0)["count"] != body(r, 1)["count"] * 2:
                errors.append(r)

    readers = [threading.Thread(target=read) for _ in range(2)]
    for t in readers:
        t.start()
    try:
        for i in range(60):
            ok(
                db,
                [
                    {"AddEntity": {"class": "Pair", "properties": {"i": i}}},
                    {"AddBlob": {}},
                    {"AddEntity": {"class": "Pair", "properties": {"i": i}}},
                ],
                [b"b"],
            )
    finally:
        stop.set()
        for t in readers:
            t.join()
        db.close()
    assert errors == []
    assert seen and all(n % 2 == 0 for n in seen)


def test_opening_the_folder_again_spares_blobs_of_a_running_write(folder):
    """A second opener of the folder (say `lensdb query --data` next to a server) recovers blobs
    left by crashed writers, never those a live writer has staged but not yet committed."""
    db = open_db(folder)
    opened: list[Database] = []
    try:
        staged = db.store.stage_blobs([b"staged, about to be committed"])
        # The second opener runs its recovery while the blob is staged and not yet committed.
        opener = threading.Thread(target=lambda: opened.append(open_db(folder)))
        opener.start()
        opener.join(30)
        with db.store.write(staged) as txn:
            txn.add_object("_Blob", {"n": 1}, staged.keys[0])
        staged.finish(staged.keys)
        assert opened, "the second open did not finish"
        for each in (db, opened[0]):
            assert ok(each, [{"FindBlob": {"blobs": True}}])[1] == [
                b"staged, about to be committed"
            ]
    finally:
        db.close()
        for other in opened:
            other.close()


def test_reads_racing_deletes_answer_cleanly(folder):
    """A FindImage whose snapshot still has an image that a concurrent DeleteImage removed
    answers either the image or a clean error, never an internal one."""
    db = open_db(folder)
    stop = threading.Event()
    answers: list[object] = []
    data = jpeg(16, 16)

    def churn() -> None:
        while not stop.is_set():
            db.query([{"AddImage": {}}], [data])
            db.query([{"DeleteImage": {}}])

    writer = threading.Thread(target=churn)
    writer.start()
    try:
        for _ in range(3000):
            r, blobs = db.query([{"FindImage": {"blobs": True}}])
            if isinstance(r, dict):
                answers.append(r["info"])
            else:
                assert r[0]["FindImage"]["returned"] == len(blobs)
                assert all(b == data for b in blobs)
    finally:
        stop.set()
        writer.join()
        db.close()
    assert not [a for a in answers if "internal error" in str(a)], answers[:3]


def test_one_find_answers_from_one_snapshot(folder):
    """Even a single Find runs several statements (count, unique, traversal, rows): a write
    committing in between must not make its answer disagree with itself."""
    db = open_db(folder)
    stop = threading.Event()

    def churn() -> None:  # the class holds 0 or 200 entities, never more
        while not stop.is_set():
            db.query([{"AddEntity": {"class": "P", "properties": {"i": i}}} for i in range(200)])
            db.query([{"DeleteEntity": {"with_class": "P"}}])

    writer = threading.Thread(target=churn)
    writer.start()
    try:
        deadline = time.monotonic() + 2
        for _ in range(500):
            r, _ = db.query(
                [{"FindEntity": {"with_class": "P", "results": {"count": True, "list": ["i"]}}}]
            )
            found = r[0]["FindEntity"]
            assert found["count"] == found["returned"] == len(found["entities"])
            if time.monotonic() > deadline:
                break
    finally:
        stop.set()
        writer.join()
        db.close()


def test_a_large_batch_is_one_pack_and_a_failed_one_leaves_none(folder):
    with open_db(folder) as db:
        datas = [bytes([i]) * (1000 + i) for i in range(40)] + [b"", b"x" * (3 << 20)]
        ok(db, [{"AddBlob": {"properties": {"i": i}}} for i in range(42)], datas)
        r, blobs = ok(db, [{"FindBlob": {"blobs": True, "sort": "i"}}])
        assert blobs == datas
        before = set(pack_files(folder))
        assert len(before) == 1
        bad = [{"AddBlob": {"properties": {"i": 100 + i}}} for i in range(42)]
        bad.append({"FindEntity": {"is_connected_to": {"ref": 99}}})
        fail(db, bad, datas)
        assert set(pack_files(folder)) == before
        assert intents(folder) == []
