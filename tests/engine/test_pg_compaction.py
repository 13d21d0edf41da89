"""Packs in S3 or a shared folder under PostgreSQL are compacted as the folder store's are
(test_blob_packs.py): a pack less than half live is rewritten, and the old one waits in
`blob_trash` until no read snapshot can still name it."""

from __future__ import annotations

import threading

import pytest

from lensdb.store.base import Selection

from .helpers import jpeg, ok, one


@pytest.fixture
def pgdb(db, backend):
    if backend == "sqlite":
        pytest.skip("PostgreSQL backend only (the folder store's compaction: test_blob_packs)")
    return db


def pack_sizes(db) -> list[int]:  # noqa: ANN001
    return sorted(db.store.blobs.list_packs().values())


def find_blobs(db) -> list[bytes]:  # noqa: ANN001
    return ok(db, [{"FindBlob": {"blobs": True, "sort": "n"}}])[1]


def clean(db) -> None:  # noqa: ANN001
    report = db.store.check()
    assert report.missing == [] and report.orphans == [], report


def test_deleting_a_few_blobs_keeps_the_pack_as_it_is(pgdb):
    datas = [bytes([i]) * 1000 for i in range(10)]
    ok(pgdb, [{"AddBlob": {"properties": {"n": i}}} for i in range(10)], datas)
    assert one(pgdb, {"DeleteBlob": {"constraints": {"n": ["<", 4]}}})["count"] == 4
    assert pack_sizes(pgdb) == [10_000]  # 60% still live: not worth a rewrite
    assert find_blobs(pgdb) == datas[4:]


def test_a_pack_less_than_half_live_is_rewritten(pgdb):
    datas = [bytes([i]) * 1000 for i in range(10)]
    ok(pgdb, [{"AddBlob": {"properties": {"n": i}}} for i in range(10)], datas)
    ok(pgdb, [{"AddBlob": {"properties": {"n": 99}}}], [b"other"])
    before = set(pgdb.store.blobs.list_packs())
    assert one(pgdb, {"DeleteBlob": {"constraints": {"n": ["<", 7]}}})["count"] == 7
    pgdb.store.sweep_trash()  # no reader is open: the old pack goes now
    assert pack_sizes(pgdb) == [5, 3000]
    assert len(set(pgdb.store.blobs.list_packs()) - before) == 1  # survivors in a new pack
    assert find_blobs(pgdb) == datas[7:] + [b"other"]
    clean(pgdb)


def test_a_batch_whose_objects_mostly_existed_is_compacted(pgdb):
    def item(i: int) -> list[dict]:
        return [{"AddImage": {"properties": {"id": i}, "if_not_found": {"id": ["==", i]}}}]

    ok(pgdb, [c for i in range(4) for c in item(i)], [jpeg()] * 4)
    r, _ = ok(pgdb, [c for i in range(5) for c in item(i)], [jpeg()] * 5)
    assert [next(iter(x.values()))["status"] for x in r] == [2, 2, 2, 2, 0]
    pgdb.store.sweep_trash()
    size = len(jpeg())
    assert pack_sizes(pgdb) == [size, 4 * size]
    assert len(ok(pgdb, [{"FindImage": {"blobs": True}}])[1]) == 5
    clean(pgdb)


def test_a_reader_keeps_the_pack_a_compaction_moved_blobs_out_of(pgdb):
    """A snapshot that saw a blob in the old pack reads it after the compaction committed;
    the old pack goes once that snapshot has ended."""
    datas = [bytes([i]) * 1000 for i in range(10)]
    ok(pgdb, [{"AddBlob": {"properties": {"n": i}}} for i in range(10)], datas)
    [old] = pgdb.store.blobs.list_packs()
    store = pgdb.store
    with store.read() as txn:
        rows = txn.find_objects(Selection(classes=["_Blob"]))
        done = threading.Event()

        def delete() -> None:
            one(pgdb, {"DeleteBlob": {"constraints": {"n": ["<", 7]}}})
            done.set()

        t = threading.Thread(target=delete)
        t.start()
        assert done.wait(30)
        t.join()
        store.sweep_trash()
        assert old in store.blobs.list_packs()  # retired, kept for this snapshot
        assert [store.get_blob(r.blob) for r in rows] == datas
    assert find_blobs(pgdb) == datas[7:]  # a new snapshot reads the moved blobs
    store.sweep_trash()
    assert old not in store.blobs.list_packs()
    assert pack_sizes(pgdb) == [3000]
    clean(pgdb)
