"""Pack files: one per query, compacted once less than half live, never unlinked under a reader."""

from __future__ import annotations

import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from lensdb import Database
from lensdb.store.base import Selection

from .helpers import jpeg, ok, one, pack_files, packs_in_rows

pytestmark = pytest.mark.sqlite_only


def pack_sizes(folder: Path) -> list[int]:
    return sorted((Path(folder) / "blobs" / f).stat().st_size for f in pack_files(folder))


def trash_rows(folder: Path) -> list[str]:
    conn = sqlite3.connect(Path(folder) / "lensdb.sqlite3")
    try:
        return [r[0] for r in conn.execute("SELECT key FROM blob_trash")]
    finally:
        conn.close()


def find_blobs(db: Database) -> list[bytes]:
    return ok(db, [{"FindBlob": {"blobs": True, "sort": "n"}}])[1]


def test_deleting_a_few_blobs_keeps_the_pack_as_it_is(db, folder):
    datas = [bytes([i]) * 1000 for i in range(10)]
    ok(db, [{"AddBlob": {"properties": {"n": i}}} for i in range(10)], datas)
    assert one(db, {"DeleteBlob": {"constraints": {"n": ["<", 4]}}})["count"] == 4
    assert pack_sizes(folder) == [10_000]  # 60% still live: not worth a rewrite
    assert find_blobs(db) == datas[4:]


def test_a_pack_less_than_half_live_is_rewritten(db, folder):
    datas = [bytes([i]) * 1000 for i in range(10)]
    ok(db, [{"AddBlob": {"properties": {"n": i}}} for i in range(10)], datas)
    ok(db, [{"AddBlob": {"properties": {"n": 99}}}], [b"other"])
    before = set(pack_files(folder))
    assert one(db, {"DeleteBlob": {"constraints": {"n": ["<", 7]}}})["count"] == 7
    assert pack_sizes(folder) == [5, 3000]
    assert len(set(pack_files(folder)) - before) == 1  # the survivors moved to a new pack
    assert {f.split("/")[-1] for f in pack_files(folder)} == packs_in_rows(folder)
    assert find_blobs(db) == datas[7:] + [b"other"]


def test_a_batch_whose_objects_mostly_existed_is_compacted(db, folder):
    def item(i: int) -> list[dict]:
        return [{"AddImage": {"properties": {"id": i}, "if_not_found": {"id": ["==", i]}}}]

    ok(db, [c for i in range(4) for c in item(i)], [jpeg()] * 4)
    r, _ = ok(db, [c for i in range(5) for c in item(i)], [jpeg()] * 5)
    assert [next(iter(x.values()))["status"] for x in r] == [2, 2, 2, 2, 0]
    size = len(jpeg())
    assert pack_sizes(folder) == [size, 4 * size]
    assert len(ok(db, [{"FindImage": {"blobs": True}}])[1]) == 5


def test_a_reader_keeps_the_pack_it_may_read(db, folder):
    """A snapshot that saw a blob can read it even after a delete (or compaction) committed."""
    ok(db, [{"AddBlob": {"properties": {"n": 1}}}], [b"still here"])
    store = db.store
    with store.read() as txn:
        [row] = txn.find_objects(Selection(classes=["_Blob"]))
        done = threading.Event()

        def delete() -> None:
            one(db, {"DeleteBlob": {}})
            done.set()

        t = threading.Thread(target=delete)
        t.start()
        assert done.wait(10)
        t.join()
        assert len(pack_files(folder)) == 1  # retired, not yet unlinked
        assert store.get_blob(row.blob) == b"still here"
    assert pack_files(folder) == []  # the last reader that could see it has left
    ok(db, [{"AddEntity": {"class": "E"}}])  # the next write forgets the unlinked pack
    assert trash_rows(folder) == []


def check(folder: Path, *args: str):
    from click.testing import CliRunner

    from lensdb.cli import main

    return CliRunner().invoke(main, ["check", "--data", str(folder), *args])


def test_check_reports_a_healthy_folder(db, folder):
    ok(db, [{"AddBlob": {"properties": {"n": i}}} for i in range(3)], [b"a", b"bb", b"ccc"])
    ok(db, [{"AddImage": {}}], [jpeg()])
    report = db.store.check()
    assert (report.rows, report.packs, report.missing, report.orphans) == (4, 2, [], [])
    assert report.live_bytes == report.pack_bytes == 6 + len(jpeg())
    out = check(folder)
    assert out.exit_code == 0, out.output
    assert "4 blob row(s) in 2 pack file(s)" in out.output and "ok:" in out.output


def test_check_finds_stray_and_truncated_packs(db, folder):
    ok(db, [{"AddBlob": {"properties": {"n": 1}}}], [b"0123456789"])
    stray = Path(folder) / "blobs" / "ab" / ("ab" + "0" * 30)
    stray.parent.mkdir(exist_ok=True)
    stray.write_bytes(b"left behind by a copy")
    out = check(folder)
    assert out.exit_code == 0 and "1 pack file(s) that no row uses found" in out.output, out.output
    out = check(folder, "--repair")
    assert out.exit_code == 0 and "removed" in out.output and not stray.exists()
    [pack] = [Path(folder) / "blobs" / f for f in pack_files(folder)]
    pack.write_bytes(b"01234")  # cut short, as a failed disk or a bad restore would leave it
    out = check(folder)
    assert out.exit_code == 1 and "1 row(s) point to bytes that are not on disk" in out.output


def test_check_leaves_staged_and_pinned_packs_alone(db, folder):
    ok(db, [{"AddBlob": {"properties": {"n": 1}}}], [b"pinned"])
    staged = db.store.stage_blobs([b"not committed yet"])
    try:
        with db.store.read():
            one(db, {"DeleteBlob": {}})  # retired, but this snapshot may still read it
            with ThreadPoolExecutor(1) as other:  # a reader has one snapshot per thread
                report = other.submit(db.store.check, repair=True).result()
            assert report.orphans == [] and report.missing == []
            assert len(pack_files(folder)) == 2
    finally:
        staged.abort()
    assert pack_files(folder) == []


def test_a_folder_from_before_packs_keeps_working(folder):
    """Folders written one file per blob (key = file name, same path) read, delete, recover
    and check as before."""
    with Database(folder) as db:
        ok(db, [{"AddEntity": {"class": "E"}}])
    key = "ab" + "12" * 15
    (Path(folder) / "blobs" / "ab").mkdir(exist_ok=True)
    (Path(folder) / "blobs" / "ab" / key).write_bytes(b"an old blob")
    conn = sqlite3.connect(Path(folder) / "lensdb.sqlite3")
    with conn:
        conn.execute(
            "INSERT INTO objects(class, props, blob) VALUES ('_Blob', ?, ?)", ('{"n": 1}', key)
        )
    conn.close()
    # An old writer's intent left behind names that file: recovery must keep it (a row uses it).
    (Path(folder) / "blobs" / "intents" / "old.log").write_text(key + "\n")
    with Database(folder) as db:
        assert find_blobs(db) == [b"an old blob"]
        report = db.store.check()
        assert (report.rows, report.missing, report.orphans, report.live_bytes) == (1, [], [], 11)
        ok(db, [{"AddBlob": {"properties": {"n": 2}}}], [b"new"])
        assert find_blobs(db) == [b"an old blob", b"new"]
        assert one(db, {"DeleteBlob": {"constraints": {"n": ["==", 1]}}})["count"] == 1
        assert [f.split("/")[-1] for f in pack_files(folder)] != [key] and len(
            pack_files(folder)
        ) == 1
        assert find_blobs(db) == [b"new"]


def test_durable_mode_round_trips(folder):
    """durable=True adds fsyncs (pack, intent, SQLite FULL); the results are the same."""
    with Database(folder, durable=True) as db:
        ok(db, [{"AddBlob": {"properties": {"n": i}}} for i in range(3)], [b"x", b"yy", b"zzz"])
        ok(db, [{"AddImage": {"properties": {"n": 9}}}], [jpeg()])
        assert find_blobs(db) == [b"x", b"yy", b"zzz"]
        assert one(db, {"DeleteBlob": {"constraints": {"n": ["<", 2]}}})["count"] == 2
        report = db.store.check()
        assert report.missing == [] and report.orphans == [] and report.rows == 2
    with Database(folder) as db:
        assert find_blobs(db) == [b"zzz"]
        assert ok(db, [{"FindImage": {"blobs": True}}])[1] == [jpeg()]
