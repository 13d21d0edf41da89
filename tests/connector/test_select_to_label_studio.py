"""Embeddings choosing what to label, into a real Label Studio: `lensdb select` (diverse, dedup)
picks images by their descriptors, the gateway's task list turns exactly those into tasks, in
that order, and Label Studio imports them; the task list's `select` parameter and
`lensdb labelstudio tasks|push --select` choose the same way."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx
import numpy as np

from .conftest import BOX_CONFIG, LS_TOKEN
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
        r, _ = client.query(
            [
                {"AddImage": {"_ref": 1, "properties": {"guid": f"{set_name}-{i}"}}},
                {"AddDescriptor": {"set": set_name, "connect": {"ref": 1}}},
                {
                    "FindImage": {
                        "constraints": {"guid": ["==", f"{set_name}-{i}"]},
                        "uniqueids": True,
                    }
                },
            ],
            [_jpeg(i), v.tobytes()],
        )
        assert client.last_query_ok(), r
        uids.append(r[2]["FindImage"]["entities"][0]["_uniqueid"])
    return uids


def _select(server, *args: str) -> list[str]:
    p = subprocess.run(
        [
            sys.executable,
            "-c",
            "from lensdb.cli import main; main()",
            "select",
            "--data",
            str(server.data_dir),
            *args,
        ],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stderr
    return [json.loads(line)["_uniqueid"] for line in p.stdout.splitlines()]


def _tasks(server, uids: list[str]) -> list[dict]:
    r = httpx.post(
        f"http://127.0.0.1:{server.http_port}/labelstudio/tasks",
        headers={"Authorization": f"Bearer {session_token(server)}"},
        json={"uniqueids": uids, "properties": "guid"},
    )
    assert r.status_code == 200, r.text
    return r.json()


def test_diverse_and_dedup_selections_become_label_studio_tasks(lensdb_for_ls, ls_api) -> None:
    uids = _seed(lensdb_for_ls, "select-emb")
    guid = {u: f"select-emb-{i}" for i, u in enumerate(uids)}

    diverse = _select(
        lensdb_for_ls,
        "--set",
        "select-emb",
        "--mode",
        "diverse",
        "-n",
        "3",
        "--constraints",
        '{"guid": [">=", "select-emb-"]}',
    )
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


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "from lensdb.cli import main; main()", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )


def test_task_list_and_push_choose_by_embeddings(lensdb_for_ls, label_studio, ls_api) -> None:
    server = lensdb_for_ls
    uids = _seed(server, "select-tl")
    guid = {u: f"select-tl-{i}" for i, u in enumerate(uids)}
    auth = {"Authorization": f"Bearer {session_token(server)}"}
    url = f"http://127.0.0.1:{server.http_port}/labelstudio/tasks"
    r = httpx.post(
        url,
        headers=auth,
        json={"select": {"set": "select-tl", "mode": "diverse", "n": 3}, "properties": "guid"},
    )
    assert r.status_code == 200, r.text
    picked = [t["data"]["guid"] for t in r.json()]
    assert picked == [guid[u] for u in _select(server, "--set", "select-tl", "-n", "3")]
    assert {int(g.rsplit("-", 1)[1]) // 5 for g in picked} == {0, 1, 2}
    # GET with the choice as JSON text; a similar-to-example choice.
    r = httpx.get(
        url,
        headers=auth,
        params={
            "select": json.dumps({"set": "select-tl", "mode": "similar", "like": uids[11], "n": 4}),
            "properties": "guid",
        },
    )
    assert sorted(t["data"]["guid"] for t in r.json()) == sorted(
        guid[u] for u in uids[10:15] if u != uids[11]
    )
    # A malformed choice is a bad request; a set that does not exist, a request lensdb cannot serve.
    for bad, status in (
        ({"set": "select-tl", "mode": "random"}, 400),
        ({"mode": "diverse"}, 400),
        ({"set": "select-tl", "mode": "similar"}, 400),
        ({"set": "select-tl", "n": 0}, 400),
        ({"set": "nope"}, 422),
    ):
        r = httpx.post(url, headers=auth, json={"select": bad})
        assert r.status_code == status and "select" in r.json()["info"], (bad, r.text)

    common = [
        "--lensdb",
        f"127.0.0.1:{server.port}",
        "--lensdb-http",
        f"http://127.0.0.1:{server.http_port}",
    ]
    env = {"LENSDB_PASSWORD": server.admin_password}
    p = _cli(
        "labelstudio",
        "tasks",
        "--select",
        '{"set": "select-tl", "mode": "dedup", "threshold": 0.1}',
        "--properties",
        "guid",
        *common,
        env=env,
    )
    assert p.returncode == 0, p.stderr
    assert [t["data"]["guid"] for t in json.loads(p.stdout)] == [
        "select-tl-0",
        "select-tl-5",
        "select-tl-10",
    ]
    assert (
        _cli("labelstudio", "tasks", "--select", '{"mode": "x"}', *common, env=env).returncode != 0
    )

    pid = ls_api.create_project("push-select", BOX_CONFIG)["id"]
    push = [
        "labelstudio",
        "push",
        "--project",
        str(pid),
        "--ls-url",
        label_studio.url,
        "--select",
        '{"set": "select-tl", "mode": "diverse", "n": 2}',
        "--no-progress",
        *common,
    ]
    env["LABEL_STUDIO_API_KEY"] = LS_TOKEN
    p = _cli(*push, env=env)
    assert p.returncode == 0 and "created 2 task(s)" in p.stdout, p.stdout + p.stderr
    assert ls_api.project(pid)["task_number"] == 2
    p = _cli(*push, env=env)  # the same two again: already sent
    assert p.returncode == 0 and "created 0 task(s)" in p.stdout, p.stdout + p.stderr
    # lensdb select links the images pushed to their tasks (what a reviewer opens).
    p = _cli(
        "select",
        "--data",
        str(server.data_dir),
        "--set",
        "select-tl",
        "-n",
        "3",
        "--ls-url",
        label_studio.url,
        "--project",
        str(pid),
    )
    lines = [json.loads(x) for x in p.stdout.splitlines()]
    tasks = {t["id"] for t in ls_api.changed_tasks(pid, None, 10)}
    assert [x.get("task_id") in tasks for x in lines] == [True, True, False]
    assert (
        lines[0]["task_url"] == f"{label_studio.url}/projects/{pid}/data?task={lines[0]['task_id']}"
    )
