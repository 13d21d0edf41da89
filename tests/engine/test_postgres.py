"""What only the PostgreSQL backend has: several processes on one database, schema migrations,
intents of crashed writers, deletes waiting for readers, and start-up errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import psycopg
import pytest

from lensdb import Database
from lensdb.store.factory import ConfigError, open_store
from lensdb.store.postgres import MIGRATIONS, PostgresStore

from .helpers import body, ok, one, open_db, pack_files

SRC = str(Path(__file__).resolve().parents[2] / "src")


@pytest.fixture
def pg(targets, folder, backend):
    if not backend.startswith("postgres"):
        pytest.skip("PostgreSQL backend only")
    return folder


def _run_all(script: str, target, n: int) -> list[dict]:
    """Start n Python processes running `script` on the same database at once."""
    code = (
        textwrap.dedent(f"""
        import json, sys
        from lensdb import Database
        db = Database({target.url!r}, blobs={target.blobs!r})
        sys.stdin.readline()  # start together
        out = []
    """)
        + textwrap.dedent(script)
        + "\nprint(json.dumps(out))\ndb.close()\n"
    )
    env = {**os.environ, "PYTHONPATH": SRC}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(n)
    ]
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        results.append(json.loads(out))
    return results


def test_concurrent_if_not_found_adds_from_two_processes_create_exactly_one(pg):
    """Two processes race to add the same 100 objects (and connections) with if_not_found:
    each exists once, and each add was answered 'created' in exactly one process."""
    script = """
        for i in range(100):
            r, _ = db.query([
                {"AddEntity": {"_ref": 1, "class": "Item", "properties": {"k": i},
                               "if_not_found": {"k": ["==", i]}}},
                {"AddEntity": {"_ref": 2, "class": "Bin", "properties": {"b": i % 7},
                               "if_not_found": {"b": ["==", i % 7]}}},
                {"AddConnection": {"class": "in", "src": 1, "dst": 2,
                                   "if_not_found": {}}}])
            out.append([next(iter(c.values()))["status"] for c in r])
    """
    a, b = _run_all(script, pg, 2)
    with open_db(pg) as db:
        counts = [
            one(db, {"FindEntity": {"with_class": c, "results": {"count": True}}})["count"]
            for c in ("Item", "Bin")
        ]
        links = one(db, {"FindConnection": {"with_class": "in", "results": {"count": True}}})
    assert counts == [100, 7]
    assert links["count"] == 100
    for i in range(100):
        assert sorted([a[i][0], b[i][0]]) == [0, 2], (i, a[i], b[i])


def test_migrations_run_once_under_a_lock_when_processes_open_together(targets, tmp_path, backend):
    if backend != "postgres":
        pytest.skip("PostgreSQL backend only")
    cluster = targets.cluster
    url = cluster.url.rsplit("/", 1)[0] + "/lensdb_migrate_test"
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS lensdb_migrate_test WITH (FORCE)")
        conn.execute("CREATE DATABASE lensdb_migrate_test")
    try:
        from backends import PgTarget

        target = PgTarget(url, f"file://{tmp_path}/b", tmp_path / "b")
        _run_all("out.append(1)", target, 4)  # four fresh opens of an empty database at once
        with psycopg.connect(url) as conn:
            versions = conn.execute("SELECT version FROM lensdb_schema ORDER BY 1").fetchall()
        assert versions == [(v,) for v, _ in MIGRATIONS]  # each exactly once
    finally:
        with psycopg.connect(cluster.url, autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS lensdb_migrate_test WITH (FORCE)")


def test_blobs_of_a_crashed_writer_are_swept_but_never_a_live_ones(pg):
    """A process that uploaded a pack and died before committing leaves an intent row whose
    owner lock is free: the next open removes the pack. A live writer's pack stays."""
    script = """
        staged = db.store.stage_blobs([b"never committed"])
        out.append(staged.pack)
        import os
        print(json.dumps(out), flush=True)
        os._exit(0)  # dies holding the intent, as a killed server would
    """
    (dead_pack,) = _run_all(script, pg, 1)[0]
    db = open_db(pg)
    try:
        live = db.store.stage_blobs([b"about to commit"])
        assert len(pack_files(pg)) == 1  # the dead pack went when this store opened
        assert Path(pack_files(pg)[0]).name == live.pack != dead_pack
        with open_db(pg) as other:  # a second server opening sweeps too, and spares `live`
            assert other.store.sweep_intents() == 0
        with db.store.write(live) as txn:
            txn.add_object("_Blob", {}, live.keys[0])
        live.finish(live.keys)
        assert ok(db, [{"FindBlob": {"blobs": True}}])[1] == [b"about to commit"]
    finally:
        db.close()


def test_deleted_bytes_stay_while_a_read_that_can_see_them_is_open(pg):
    db = open_db(pg)
    try:
        ok(db, [{"AddBlob": {"properties": {"n": 1}}}], [b"still readable"])
        with db.store.read() as reader:  # a snapshot from before the delete
            rows = reader.find_objects(reader_sel())
            assert one(db, {"DeleteBlob": {}})["count"] == 1
            assert len(pack_files(pg)) == 1
            assert db.store.get_blob(rows[0].blob) == b"still readable"
        assert db.store.sweep_trash() == 1
        assert pack_files(pg) == []
    finally:
        db.close()


def reader_sel():
    from lensdb.store.base import Selection

    return Selection(classes=["_Blob"])


def test_ranged_blob_reads_read_only_the_range(pg):
    with open_db(pg) as db:
        data = bytes(range(256)) * 10
        ok(db, [{"AddBlob": {}}, {"AddBlob": {}}], [b"first", data])
        with db.store.read() as txn:
            key = [r.blob for r in txn.find_objects(reader_sel())][1]
        assert db.store.get_blob(key, 300, 10) == data[300:310]
        assert db.store.get_blob(key, len(data) - 3) == data[-3:]
        assert db.store.blob_size(key) == len(data)


def test_wrong_url_or_password_is_one_line_saying_what_to_fix(targets, backend, tmp_path):
    if backend != "postgres":
        pytest.skip("PostgreSQL backend only")
    base = targets.cluster.url
    blobs = f"file://{tmp_path}/b"
    with pytest.raises(ConfigError) as e:
        open_store(base.rsplit("/", 1)[0] + "/no_such_db", blobs)
    assert "does not exist" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ConfigError) as e:
        open_store("postgresql://nobody:secret@127.0.0.1:1/x", blobs)
    assert "***" in str(e.value) and "secret" not in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="--blobs"):
        open_store(base)
    with pytest.raises(ConfigError, match="s3://"):
        open_store(base, "ftp://x/y")


def test_database_takes_a_url_and_blobs(pg):
    db = Database(pg.url, blobs=pg.blobs)
    try:
        assert isinstance(db.store, PostgresStore)
        r, _ = ok(db, [{"GetStatus": {}}])
        assert body(r)["status"] == 0
    finally:
        db.close()


def test_postgres_down_gives_a_clear_status_and_the_store_recovers_by_itself(pg, targets):
    """While PostgreSQL is down a query answers status -1 saying so; once it is back the same
    Database serves again (the pool replaces dead connections), and nothing acknowledged is
    lost."""
    cluster = targets.cluster
    if cluster.folder is None:
        pytest.skip("needs the private cluster (LENSDB_TEST_POSTGRES_URL is set)")
    db = open_db(pg)
    try:
        ok(db, [{"AddEntity": {"class": "Kept", "properties": {"n": 1}}}])
        cluster.stop_server()
        try:
            r, _ = db.query([{"AddEntity": {"class": "Kept", "properties": {"n": 2}}}])
            assert isinstance(r, dict) and r["status"] == -1
            assert "PostgreSQL" in r["info"] and "internal error" not in r["info"], r
        finally:
            cluster.start_server()
        ok(db, [{"AddEntity": {"class": "Kept", "properties": {"n": 3}}}])
        found = one(
            db, {"FindEntity": {"with_class": "Kept", "results": {"list": ["n"], "sort": "n"}}}
        )
        assert found["entities"] == [{"n": 1}, {"n": 3}]
    finally:
        db.close()


def test_s3_unreachable_fails_addimage_cleanly_and_commits_nothing(pg, targets, monkeypatch):
    from backends import MotoServer

    from .helpers import jpeg, rows

    if targets.s3 is None:
        pytest.skip("S3 backend only")
    own = MotoServer().start()  # a server of this test's own, to stop under the store
    try:
        for k, v in own.env().items():
            monkeypatch.setenv(k, v)
        bucket = own.new_bucket()
        db = Database(pg.url, blobs=f"s3://{bucket}/x")
        try:
            ok(db, [{"AddImage": {"properties": {"n": 1}}}], [jpeg()])
            own.stop()
            r, out = db.query(
                [{"AddEntity": {"class": "Other"}}, {"AddImage": {"properties": {"n": 2}}}],
                [jpeg()],
            )
            assert isinstance(r, dict) and r["status"] == -1 and out == []
            assert "s3://" in r["info"] and "internal error" not in r["info"], r
            assert [json.loads(p)["n"] for _, _, p, _ in rows(pg)["objects"]] == [1]
        finally:
            db.close()
    finally:
        own.stop()


def _docs(k: int):
    from lensdb.store.base import Compare, Selection

    return Selection(classes=["Doc"], where=Compare("k", "==", k))


def test_an_optimistic_writer_reads_past_the_lock_and_conflicts_when_its_reads_changed(pg):
    """Two stores on one database, as two servers. An optimistic write reads while the other
    holds the writer lock with a delete; when the delete commits first, the writer finds it
    under the lock (its read changed) and raises WriteConflict, having written nothing.
    Without a change in between, the same steps commit."""
    from lensdb.store.base import WriteConflict

    with open_db(pg) as a, open_db(pg) as b:
        ok(a, [{"AddEntity": {"class": "Doc", "properties": {"k": 1}}}])
        ok(a, [{"AddEntity": {"class": "Doc", "properties": {"k": 2}}}])
        for k, conflicts in ((1, True), (2, False)):
            deleting = b.store.write()
            other = deleting.__enter__()
            if conflicts:  # the other server holds the lock, its delete not yet committed
                other.delete_objects([r.id for r in other.find_objects(_docs(k))])
            adding = a.store.write(optimistic=True)
            txn = adding.__enter__()
            (doc,) = txn.find_objects(_docs(k))  # no wait for the lock: the row is still there
            txn.add_object("Note", {"of": doc.id})
            deleting.__exit__(None, None, None)  # commits (or ends an empty transaction)
            if conflicts:
                with pytest.raises(WriteConflict):
                    adding.__exit__(None, None, None)
            else:
                adding.__exit__(None, None, None)
        notes = one(a, {"FindEntity": {"with_class": "Note", "results": {"list": ["of"]}}})
        kept = one(a, {"FindEntity": {"with_class": "Doc", "results": {"list": ["k"]}}})
        assert [e["k"] for e in kept["entities"]] == [2]
        assert len(notes["entities"]) == 1  # the note of doc 2 only


def test_an_optimistic_write_failing_on_reads_of_two_states_conflicts(pg):
    """A write query that fails on what it read must have read one state: when a commit came
    between two of its reads (the first now stale), the failure is a WriteConflict (the
    engine runs the query again under the lock) rather than an answer from mixed states."""
    from lensdb.store.base import WriteConflict

    with open_db(pg) as a, open_db(pg) as b:
        ok(a, [{"AddEntity": {"class": "Doc", "properties": {"k": 1}}}])
        for changed in (True, False):
            with pytest.raises(WriteConflict if changed else ValueError):
                with a.store.write(optimistic=True) as txn:
                    txn.find_objects(_docs(1))
                    if changed:
                        ok(b, [{"AddEntity": {"class": "Doc", "properties": {"k": 1}}}])
                    txn.find_objects(_docs(2))
                    raise ValueError("the query's own error")


def test_an_optimistic_write_whose_blob_was_deleted_under_it_conflicts(pg):
    """A write query reads a row without the lock (and, between statements, pins no snapshot);
    another server deletes the row and its bytes are swept. Reading the bytes fails, and the
    failure is a WriteConflict, so the engine runs the query again under the lock and sees
    the delete whole, rather than answering 'blob missing'."""
    from lensdb.store.base import Selection, WriteConflict

    with open_db(pg) as a, open_db(pg) as b:
        ok(a, [{"AddBlob": {"properties": {"n": 1}}}], [b"soon gone"])
        with pytest.raises(WriteConflict):
            with a.store.write(optimistic=True) as txn:
                (row,) = txn.find_objects(Selection(classes=["_Blob"]))
                assert one(b, {"DeleteBlob": {}})["count"] == 1
                assert pack_files(pg) == []  # swept: nothing of `a` could still see it
                a.store.get_blob(row.blob)
