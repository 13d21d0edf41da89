"""`lensdb copy`: a dataset moves between backends with ids, blobs and indexes, resumes after an
interruption, and is verified at the end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lensdb import Database
from lensdb.store.copy import CopyError, copy_dataset

from .helpers import jpeg, ok, one, open_db

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _fill(db: Database, n: int = 30) -> None:
    for i in range(n):
        ok(
            db,
            [
                {
                    "AddImage": {
                        "_ref": 1,
                        "properties": {"i": i, "split": "val" if i % 3 else "train"},
                    }
                },
                {
                    "AddBoundingBox": {
                        "image_ref": 1,
                        "label": f"l{i}",
                        "rectangle": {"x": 1, "y": 1, "width": 5, "height": 5},
                    }
                },
                {"AddEntity": {"_ref": 2, "class": "Tag", "properties": {"i": i}}},
                {"AddConnection": {"class": "tagged", "src": 1, "dst": 2}},
                {"AddBlob": {"properties": {"i": i}}},
            ],
            [jpeg(16 + i, 16), os.urandom(100 + i)],
        )
    ok(db, [{"CreateIndex": {"index_type": "entity", "class": "Tag", "property_key": "i"}}])


def _state(db: Database) -> list:
    r, blobs = ok(
        db,
        [
            {
                "FindImage": {
                    "_ref": 1,
                    "uniqueids": True,
                    "blobs": True,
                    "sort": "i",
                    "results": {"all_properties": True},
                }
            },
            {"FindBoundingBox": {"image_ref": 1, "uniqueids": True, "labels": True}},
            {"FindConnection": {"results": {"list": ["_src", "_dst", "_uniqueid"]}}},
            {"FindBlob": {"blobs": True, "sort": "i", "uniqueids": True}},
            {"GetIndexes": {}},
        ],
    )
    return [r, blobs]


def test_copy_from_a_folder_to_each_backend_resumes_and_verifies(tmp_path, folder):
    source = Database(tmp_path / "source")
    _fill(source)
    target = open_db(folder)
    calls = []

    def stop_after_two_batches(phase: str, done: int, total: int) -> None:
        calls.append((phase, done))
        if len(calls) == 2:
            raise KeyboardInterrupt  # as a user's Ctrl-C would

    with pytest.raises(KeyboardInterrupt):
        copy_dataset(source.store, target.store, batch=20, progress=stop_after_two_batches)
    report = copy_dataset(source.store, target.store, batch=20)
    assert report.resumed_at == (40, 0) and report.ok, report
    assert report.objects == 120 - 40 and report.connections == 30 + 30
    assert _state(target) == _state(source)
    # New objects in the copy get new ids, after the copied ones.
    one(target, {"AddEntity": {"class": "Tag", "properties": {"i": 99}}})
    ids = one(
        target, {"FindEntity": {"with_class": "Tag", "uniqueids": True, "sort": "_uniqueid"}}
    )["entities"]
    assert len({e["_uniqueid"] for e in ids}) == 31
    # A destination with other data is refused, not mixed.
    with pytest.raises(CopyError, match="not the source's first"):
        other = Database(tmp_path / "other")
        _fill(other, 2)
        copy_dataset(other.store, target.store)
    other.close()
    source.close()
    target.close()


def test_copy_command_moves_a_dataset_back_and_reports(tmp_path, folder, backend):
    if backend == "sqlite":
        pytest.skip("the round trip goes through PostgreSQL")
    source = Database(tmp_path / "source")
    _fill(source, 5)
    before = _state(source)
    source.close()
    env = {**os.environ, "PYTHONPATH": SRC}

    def lensdb(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-c", "from lensdb.cli import main; main()", *args],
            env=env,
            capture_output=True,
            text=True,
        )

    there = lensdb("copy", str(tmp_path / "source"), folder.url, "--blobs", folder.blobs)
    assert there.returncode == 0, there.stderr
    assert "verified" in there.stdout and "objects" in there.stderr  # the progress bar
    back = lensdb("copy", folder.url, str(tmp_path / "back"), "--src-blobs", folder.blobs)
    assert back.returncode == 0, back.stderr
    with Database(tmp_path / "back") as db:
        assert _state(db) == before
