"""`lensdb select`: images chosen for labeling by their embeddings (diverse, dedup, similar)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from lensdb import Database
from lensdb.index import selection

from .helpers import jpeg, ok


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "from lensdb.cli import main; main()", *args],
        capture_output=True,
        text=True,
    )


def seed(folder: Path) -> tuple[list[str], np.ndarray]:
    """Three tight clusters of 5 images each (15 near-duplicates in 3 groups), CLIP-style."""
    rng = np.random.default_rng(1)
    centers = np.array([[10, 0, 0, 0], [0, 10, 0, 0], [0, 0, 10, 0]], np.float32)
    vecs = np.vstack([c + rng.normal(scale=0.01, size=(5, 4)) for c in centers]).astype(np.float32)
    uids = []
    with Database(folder) as db:
        ok(db, [{"AddDescriptorSet": {"name": "emb", "dimensions": 4, "metric": "L2"}}])
        for i, v in enumerate(vecs):
            r, _ = ok(
                db,
                [
                    {"AddImage": {"_ref": 1, "properties": {"n": i}}},
                    {"AddDescriptor": {"set": "emb", "connect": {"ref": 1}}},
                    {"FindImage": {"constraints": {"n": ["==", i]}, "uniqueids": True}},
                ],
                [jpeg(), v.tobytes()],
            )
            uids.append(r[2]["FindImage"]["entities"][0]["_uniqueid"])
    return uids, vecs


def lines(p: subprocess.CompletedProcess) -> list[dict]:
    assert p.returncode == 0, p.stderr
    return [json.loads(x) for x in p.stdout.splitlines()]


def test_diverse_covers_every_cluster_first(tmp_path):
    uids, _ = seed(tmp_path / "db")
    got = lines(cli("select", "--data", str(tmp_path / "db"), "--set", "emb", "-n", "3"))
    clusters = {uids.index(g["_uniqueid"]) // 5 for g in got}
    assert clusters == {0, 1, 2} and [g["rank"] for g in got] == [1, 2, 3]


def test_dedup_keeps_one_per_cluster(tmp_path):
    uids, _ = seed(tmp_path / "db")
    got = lines(
        cli(
            "select",
            "--data",
            str(tmp_path / "db"),
            "--set",
            "emb",
            "--mode",
            "dedup",
            "--threshold",
            "0.1",
        )
    )
    assert [g["_uniqueid"] for g in got] == [uids[0], uids[5], uids[10]]
    assert got[1]["duplicates"] == uids[6:10]


def test_similar_to_an_example(tmp_path):
    uids, _ = seed(tmp_path / "db")
    got = lines(
        cli(
            "select",
            "--data",
            str(tmp_path / "db"),
            "--set",
            "emb",
            "--mode",
            "similar",
            "--like",
            uids[7],
            "-n",
            "4",
        )
    )
    assert sorted(g["_uniqueid"] for g in got) == sorted(u for u in uids[5:10] if u != uids[7])
    bad = cli("select", "--data", str(tmp_path / "db"), "--set", "nope")
    assert bad.returncode != 0 and "nope" in bad.stderr


def test_k_center_greedy_against_a_direct_computation():
    rng = np.random.default_rng(4)
    data = rng.normal(size=(200, 6)).astype(np.float32)
    picked = selection.diverse(data, 10)
    for m in range(1, 10):
        # each pick is the point farthest from all earlier picks
        d = np.min([np.sum((data - data[p]) ** 2, axis=1) for p in picked[:m]], axis=0)
        assert picked[m] == int(np.argmax(d))


def test_disagree_flags_a_label_its_neighbours_contradict(tmp_path):
    uids, _ = seed(tmp_path / "db")
    with Database(tmp_path / "db") as db:
        for i, u in enumerate(uids):
            label = "cat" if i < 5 else "dog" if i < 10 else None  # cluster 2 unlabelled
            if i == 3:
                label = "dog"  # the odd one out in the cat cluster
            if label:
                ok(
                    db,
                    [
                        {
                            "UpdateImage": {
                                "constraints": {"_uniqueid": ["==", u]},
                                "properties": {"class": label},
                            }
                        }
                    ],
                )
    got = lines(
        cli(
            "select",
            "--data",
            str(tmp_path / "db"),
            "--set",
            "emb",
            "--mode",
            "disagree",
            "--label-property",
            "class",
            "-k",
            "4",
        )
    )
    assert got == [{"_uniqueid": uids[3], "label": "dog", "neighbours_say": "cat", "share": 1.0}]
