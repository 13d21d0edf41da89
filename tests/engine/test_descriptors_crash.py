"""Crash consistency of descriptors: a child ingesting (and deleting, and saving its index now
and then) is killed with SIGKILL. After each kill the folder is reopened: every acknowledged
batch is there, no half batch is, and the index agrees with the stored rows."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from lensdb import Database

from .helpers import ok, reported_commits

PER_QUERY = 20
DIM = 8
KEEP = 6  # batch n deletes batch n - KEEP

CHILD = r"""
import sys
import numpy as np
from lensdb import Database

folder, per, dim, keep = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
db = Database(folder)
db.query([{"AddDescriptorSet": {"name": "s", "dimensions": dim, "engine": "Flat"}}])
r, _ = db.query([{"FindDescriptor": {"set": "s", "results": {"max": "q"}}}])
top = r[0]["FindDescriptor"]["max"]
n = 0 if top is None else top + 1
print("ready", flush=True)
while True:
    vecs = np.random.default_rng(n).normal(size=(per, dim)).astype(np.float32)
    cmds = [{"AddDescriptor": {"set": "s", "properties": {"q": n, "i": i}}} for i in range(per)]
    cmds.append({"DeleteDescriptor": {"set": "s", "constraints": {"q": ["==", n - keep]}}})
    r, _ = db.query(cmds, [v.tobytes() for v in vecs])
    if not isinstance(r, list):
        print("error", r, flush=True)
        sys.exit(1)
    sys.stdout.write(f"committed {n}\n")  # one write: see reported_commits
    sys.stdout.flush()
    # Searching keeps the index loaded (and current); saving now and then leaves an older copy
    # on disk for the next open to catch up from.
    db.query([{"FindDescriptor": {"set": "s", "k_neighbors": 3}}], [vecs[0].tobytes()])
    if n % 5 == 0:
        db.vectors.save()
    n += 1
"""


def run_and_kill(folder: Path, delay: float) -> list[int]:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(folder), str(PER_QUERY), str(DIM), str(KEEP)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        first = child.stdout.readline()
        assert first.strip() == "ready", first + (child.stderr.read() if child.stderr else "")
        time.sleep(delay)
        os.kill(child.pid, signal.SIGKILL)
        out, _ = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert "error" not in out, out
    return reported_commits(out)


def test_sigkill_during_descriptor_ingest(tmp_path: Path):
    folder = tmp_path / "db"
    rnd = random.Random(3)
    acknowledged: list[int] = []
    for _ in range(5):
        acknowledged += run_and_kill(folder, rnd.uniform(0.3, 1.2))
        with Database(folder) as db:
            r, blobs = ok(
                db,
                [
                    {
                        "FindDescriptor": {
                            "set": "s",
                            "blobs": True,
                            "results": {"list": ["q", "i", "_uniqueid"]},
                        }
                    }
                ],
            )
            ents = r[0]["FindDescriptor"]["entities"]
            by_q: dict[int, list[int]] = {}
            for e in ents:
                by_q.setdefault(e["q"], []).append(e["i"])
            # All or nothing per query; nothing acknowledged lost (unless deleted by design).
            assert all(sorted(v) == list(range(PER_QUERY)) for v in by_q.values()), by_q
            # (The last batch may have committed without its acknowledgement being read.)
            last = max([*acknowledged, *by_q])
            live = {q for q in acknowledged if q > last - KEEP}
            assert live <= set(by_q), (live, sorted(by_q))
            # The stored bytes are the vectors sent.
            for e, b in zip(ents, blobs, strict=True):
                want = (
                    np.random.default_rng(e["q"])
                    .normal(size=(PER_QUERY, DIM))
                    .astype(np.float32)[e["i"]]
                )
                assert b == want.tobytes()
            # The index (read back from an older save and caught up, or rebuilt) agrees.
            data = np.frombuffer(b"".join(blobs), np.float32).reshape(-1, DIM)
            q = data[len(data) // 2] + 0.01
            r, _ = ok(
                db,
                [
                    {
                        "FindDescriptor": {
                            "set": "s",
                            "k_neighbors": 10,
                            "distances": True,
                            "uniqueids": True,
                        }
                    }
                ],
                [q.tobytes()],
            )
            got = [e["_uniqueid"] for e in r[0]["FindDescriptor"]["entities"]]
            dist = np.sum((data - q) ** 2, axis=1, dtype=np.float32)
            assert got == [ents[i]["_uniqueid"] for i in np.argsort(dist, kind="stable")[:10]]
            set_uid = ok(db, [{"FindDescriptorSet": {"uniqueids": True}}])[0][0][
                "FindDescriptorSet"
            ]["entities"][0]["_uniqueid"]
            index = db.vectors.get(int(set_uid.split(".")[2]))
            assert index.ids() == {int(e["_uniqueid"].split(".")[2]) for e in ents}
