"""Embeddings choosing what to label, into a real Label Studio: `lensdb select` (diverse, dedup)
picks images by their descriptors, the gateway's task list turns exactly those into tasks, in
that order, and Label Studio imports them."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import numpy as np

from .conftest import BOX_CONFIG
from .helpers import session_token


def _jpeg(i: int) -> bytes:
    import io

    from PIL import Image
    buf = io.BytesIO()
    Image.new("RGB", (32, 24), (i * 15 % 256, 80, 160)).save(buf, "JPEG")
    return buf.getvalue()


def _seed(server, set_name: str) -> list[str]:
    client = server.connector()
    rng = np.random.default_rng(2)
    centers = np.eye(4, dtype=np.float32)[:3] * 10
    client.query([{"AddDescriptorSet": {"name": set_name, "dimensions": 4, "metric": "L2"}}])
    uids = []
    for i in range(15):
        v = (centers[i // 5] + rng.normal(scale=0.01, size=4)).astype(np.float32)
        r, _ = client.query([
            {"AddImage": {"_ref": 1, "properties": {"guid": f"{set_name}-{i}"}}},
            {"AddDescriptor": {"set": set_name, "connect": {"ref": 1}}},
            {"FindImage": {"constraints": {"guid": ["==", f"{set_name}-{i}"]}, "uniqueids": True}},
        ], [_jpeg(i), v.tobytes()])
        assert client.last_query_ok(), r
        uids.append(r[2]["FindImage"]["entities"][0]["_uniqueid"])
    return uids


def _select(server, *args: str) -> list[str]:
    p = subprocess.run([sys.executable, "-c", "from lensdb.cli import main; main()", "select",
                        "--data", str(server.data_dir), *args], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return [json.loads(line)["_uniqueid"] for line in p.stdout.splitlines()]


def _tasks(server, uids: list[str]) -> list[dict]:
    r = httpx.post(f"http://127.0.0.1:{server.http_port}/labelstudio/tasks",
                   headers={"Authorization": f"Bearer {session_token(server)}"},
                   json={"uniqueids": uids, "properties": "guid"})
    assert r.status_code == 200, r.text
    return r.json()


def test_diverse_and_dedup_selections_become_label_studio_tasks(lensdb_for_ls, ls_api) -> None:
    uids = _seed(lensdb_for_ls, "select-emb")
    guid = {u: f"select-emb-{i}" for i, u in enumerate(uids)}

    diverse = _select(lensdb_for_ls, "--set", "select-emb", "--mode", "diverse", "-n", "3",
                      "--constraints", '{"guid": [">=", "select-emb-"]}')
    tasks = _tasks(lensdb_for_ls, diverse)
    assert [t["data"]["guid"] for t in tasks] == [guid[u] for u in diverse]
    assert {int(guid[u].rsplit("-", 1)[1]) // 5 for u in diverse} == {0, 1, 2}  # one per cluster
    pid = ls_api.create_project("diverse", BOX_CONFIG)["id"]
    ls_api.import_tasks(pid, tasks)
    got = ls_api.changed_tasks(pid, None, 100)
    assert sorted(t["data"]["guid"] for t in got) == sorted(guid[u] for u in diverse)

    dedup = _select(lensdb_for_ls, "--set", "select-emb", "--mode", "dedup", "--threshold", "0.1")
    assert [guid[u] for u in dedup] == ["select-emb-0", "select-emb-5", "select-emb-10"]
    pid = ls_api.create_project("dedup", BOX_CONFIG)["id"]
    ls_api.import_tasks(pid, _tasks(lensdb_for_ls, dedup))
    assert ls_api.project(pid)["task_number"] == 3
