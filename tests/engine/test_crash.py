"""Crash consistency: a child process ingesting with blobs is killed with SIGKILL mid-query.

After each kill the database is reopened and must be consistent: every blob row has a readable
pack, no pack lacks a row, no intent is left, and every query is all there or all absent. Each
query also deletes an earlier query's big blob, so the kills land in pack compactions too.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lensdb import Database

from .helpers import PACK_NAME, decode, ok, packs_in_rows, packs_on_disk, reported_commits, rows

pytestmark = pytest.mark.sqlite_only

IMAGES_PER_QUERY = 3
KEEP = 5  # query n deletes what query n - KEEP added
# Objects per query carrying "q": one entity, the images, one box per image, one blob.
OBJECTS_PER_QUERY = 1 + 2 * IMAGES_PER_QUERY + 1

CHILD = r"""
import io, sys
from PIL import Image
from lensdb import Database

folder, images, keep = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
db = Database(folder)
r, _ = db.query([{"FindEntity": {"with_class": "Q", "results": {"max": "q"}}}])
top = r[0]["FindEntity"]["max"]
n = 0 if top is None else top + 1
buf = io.BytesIO()
Image.new("RGB", (96, 64), (9, 99, 199)).save(buf, "JPEG")
jpeg = buf.getvalue()
print("ready", flush=True)
while True:
    cmds = [{"AddEntity": {"_ref": 1, "class": "Q", "properties": {"q": n}}}]
    blobs = []
    for i in range(images):
        ref = 10 + i
        cmds.append({"AddImage": {"_ref": ref, "properties": {"q": n, "i": i},
                                  "connect": {"ref": 1, "class": "has", "direction": "in"}}})
        cmds.append({"AddBoundingBox": {"image_ref": ref, "properties": {"q": n},
                                        "rectangle": {"x": 1, "y": 1, "width": 8, "height": 8}}})
        blobs.append(jpeg)
    cmds.append({"AddBlob": {"properties": {"q": n}}})
    blobs.append(bytes([n % 256]) * 50000)
    # An earlier query's big blob goes first: its pack, left mostly dead, gets compacted.
    cmds.append({"DeleteBlob": {"constraints": {"q": ["==", n - keep + 2]}}})
    for verb in ("DeleteImage", "DeleteBlob", "DeleteEntity"):
        cmds.append({verb: {"constraints": {"q": ["==", n - keep]}}})
    r, _ = db.query(cmds, blobs)
    if not isinstance(r, list):
        print("error", r, flush=True)
        sys.exit(1)
    sys.stdout.write(f"committed {n}\n")  # one write: see reported_commits
    sys.stdout.flush()
    n += 1
"""


def run_and_kill(folder: Path, delay: float) -> list[int]:
    """Start the child, kill it `delay` seconds after it is ready; the queries it reported."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(folder), str(IMAGES_PER_QUERY), str(KEEP)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        first = child.stdout.readline()
        assert first.strip() == "ready", first + child.stderr.read() if child.stderr else first
        time.sleep(delay)
        os.kill(child.pid, signal.SIGKILL)
        out, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL, err
    assert "error" not in out and "Traceback" not in err, out + err
    return reported_commits(out)


def check_consistent(folder: Path, reported: list[int]) -> None:
    with Database(folder) as db:
        # Recovery ran on open: every intent of a dead writer was settled and removed.
        assert list((folder / "blobs" / "intents").iterdir()) == []

        state = rows(folder)
        # Every pack a row points into is on disk, and no pack lacks a row.
        wanted, on_disk = packs_in_rows(folder), packs_on_disk(folder)
        assert wanted == on_disk, (wanted - on_disk, on_disk - wanted)
        strays = [
            p for p in (folder / "blobs").rglob("*") if p.is_file() and not PACK_NAME.match(p.name)
        ]
        assert strays == []

        r, blobs = ok(
            db,
            [
                {"FindImage": {"blobs": True, "results": {"list": ["q"]}}},
                {"FindBlob": {"blobs": True, "results": {"list": ["q"]}}},
                {"FindBoundingBox": {"blobs": True, "results": {"count": True}}},
            ],
        )
        images = r[0]["FindImage"]["entities"]
        stored = r[1]["FindBlob"]["entities"]
        assert len(blobs) == len(images) + len(stored) + r[2]["FindBoundingBox"]["returned"]
        for e in images:
            assert decode(blobs[e["_blob_index"]]).size == (96, 64)
        for e in stored:
            assert blobs[e["_blob_index"]] == bytes([e["q"] % 256]) * 50000

        # Every query is all there or all absent: count its objects and connections. The big
        # blob of query q went with query q + KEEP - 2.
        per_q: dict[int, int] = {}
        for _, _, props, _ in state["objects"]:
            q = json.loads(props).get("q")
            if q is not None:
                per_q[q] = per_q.get(q, 0) + 1
        top = max(per_q, default=0)
        assert all(n == OBJECTS_PER_QUERY - (q <= top - KEEP + 2) for q, n in per_q.items()), per_q
        assert len(state["connections"]) == len(per_q) * 2 * IMAGES_PER_QUERY

        # The queries present are exactly the last KEEP of a committed prefix, and every
        # query the child saw committed is there unless a later committed query deleted it.
        present = sorted(per_q)
        if reported:
            candidates = [max(reported), max(reported) + 1]
            assert any(present == list(range(max(0, m - KEEP + 1), m + 1)) for m in candidates), (
                present,
                max(reported),
            )


def test_kill_during_ingest_leaves_a_consistent_database(tmp_path: Path):
    folder = tmp_path / "db"
    rng = random.Random(20261125)
    total: list[int] = []
    for _ in range(4):
        reported = run_and_kill(folder, rng.uniform(0.2, 1.2))
        total += reported
        check_consistent(folder, reported)
    assert len(total) > 8, "the child should commit some queries between kills"
