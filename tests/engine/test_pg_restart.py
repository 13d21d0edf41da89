"""A PostgreSQL restart leaves every idle pooled connection of a running server dead. The
first queries after it, reads and writes alike, must still succeed: a dead connection fails
before anything ran on it, and is replaced."""

from __future__ import annotations

import io
import threading

import pytest
from PIL import Image

from lensdb import Database


def _jpeg(i: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (i % 256, 0, 0)).save(out, "JPEG")
    return out.getvalue()


def _add(db: Database, i: int) -> list:
    return db.query(
        [{"AddImage": {"properties": {"n": i}, "if_not_found": {"n": ["==", i]}}}], [_jpeg(i)]
    )[0]


@pytest.fixture
def restartable(backend, postgres_cluster):
    if not backend.startswith("postgres"):
        pytest.skip("PostgreSQL backend only")
    if postgres_cluster.folder is None:
        pytest.skip("needs the private cluster (LENSDB_TEST_POSTGRES_URL is set)")
    return postgres_cluster


def test_first_queries_after_a_restart_succeed_on_a_full_pool(restartable, folder):
    db = Database(folder.url, blobs=folder.blobs)
    try:
        # Fill the pool: 8 queries at once leave up to 8 idle connections behind.
        barrier = threading.Barrier(8)

        def busy(i: int) -> None:
            barrier.wait()
            assert _add(db, i)[0]["AddImage"]["status"] == 0
            db.query([{"FindImage": {"results": {"count": True}, "blobs": False}}])

        threads = [threading.Thread(target=busy, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        restartable.stop_server()
        restartable.start_server()
        # Every idle connection is dead now; each of these takes one from the pool.
        for i in range(8, 12):
            r = _add(db, i)
            assert r[0]["AddImage"]["status"] == 0, r
        r, _ = db.query([{"FindImage": {"results": {"count": True}, "blobs": False}}])
        assert r[0]["FindImage"]["count"] == 12, r
        r, blobs = db.query(
            [
                {
                    "FindImage": {
                        "constraints": {"n": ["==", 3]},
                        "blobs": True,
                        "results": {"list": ["n"]},
                    }
                }
            ]
        )
        assert r[0]["FindImage"]["entities"][0]["n"] == 3 and blobs == [_jpeg(3)], r
    finally:
        db.close()
