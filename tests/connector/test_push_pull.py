"""push, pull and the webhook against stock Label Studio (no plugin) and a real `lensdb serve`."""

from __future__ import annotations

import sqlite3
import time

import httpx
import pytest
from click.testing import CliRunner

from lensdb.cli import main
from lensdb.connector import pull as pull_module
from lensdb.connector.lsclient import LabelStudio, SnapshotReader
from lensdb.labelstudio import annotations as A
from lensdb.labelstudio import queries as Q

from .conftest import BOX_CONFIG, LS_TOKEN, WEBHOOK_SECRET
from .helpers import add_images


def run(server, ls, *args: str, ok: bool = True) -> str:
    env = {"LENSDB_PASSWORD": server.admin_password, "LABEL_STUDIO_API_KEY": LS_TOKEN}
    common = [
        "--lensdb",
        f"127.0.0.1:{server.port}",
        "--lensdb-http",
        f"http://127.0.0.1:{server.http_port}",
    ]
    cmd, rest = list(args[:2]), list(args[2:])
    if cmd[1] in ("push", "pull"):
        rest += ["--ls-url", ls.url]
        rest += common
    result = CliRunner().invoke(main, [*cmd, *rest], env=env, catch_exceptions=False)
    assert (result.exit_code == 0) == ok, result.output
    return result.output


def project_counts(api: LabelStudio, pid: int) -> tuple[int, int]:
    p = api.project(pid)
    return p["task_number"], p["total_predictions_number"]


# ---- push -----------------------------------------------------------------------------------


def test_push_sends_only_new_images(lensdb_for_ls, label_studio, ls_api) -> None:
    db = lensdb_for_ls.connector()
    add_images(db, 500, "push", boxes=True, polygons=True)
    pid = ls_api.create_project("push", BOX_CONFIG)["id"]
    select = '{"dataset": ["==", "push"]}'
    out = run(
        lensdb_for_ls,
        label_studio,
        "labelstudio",
        "push",
        "--project",
        str(pid),
        "--constraints",
        select,
        "--predictions",
        "--limit",
        "300",
        "--batch-size",
        "128",
        "--properties",
        "guid,n",
    )
    assert "created 300 task(s)" in out and "300 with predictions" in out
    assert project_counts(ls_api, pid) == (300, 300)
    out = run(
        lensdb_for_ls,
        label_studio,
        "labelstudio",
        "push",
        "--project",
        str(pid),
        "--constraints",
        select,
        "--predictions",
    )
    assert "created 200 task(s)" in out and "skipped 300" in out
    assert project_counts(ls_api, pid) == (500, 500)
    out = run(
        lensdb_for_ls,
        label_studio,
        "labelstudio",
        "push",
        "--project",
        str(pid),
        "--constraints",
        select,
        "--predictions",
    )
    assert "created 0 task(s)" in out and "skipped 500" in out
    assert project_counts(ls_api, pid) == (500, 500)
    # What Label Studio got: signed gateway links, chosen properties, a box and a polygon per task.
    task = ls_api.task(ls_api.changed_tasks(pid, None, 1)[0]["id"])  # with its predictions
    assert "/media/images/" in task["data"]["image"] and "sig=" in task["data"]["image"]
    assert task["data"]["guid"].startswith("push-")
    (pred,) = task["predictions"]
    assert sorted(r["type"] for r in pred["result"]) == ["polygonlabels", "rectanglelabels"]
    assert httpx.get(task["data"]["image"]).headers["content-type"] == "image/jpeg"
    # lensdb knows image -> task for every one of them.
    r, _ = db.query(
        [
            {
                "FindEntity": {
                    "with_class": "LS_push",
                    "constraints": {"LS_project_id": ["==", pid]},
                    "results": {"count": True},
                }
            }
        ]
    )
    assert r[0]["FindEntity"]["count"] == 500


def test_push_failures_say_what_to_do(lensdb_for_ls, label_studio, ls_api) -> None:
    db = lensdb_for_ls.connector()
    add_images(db, 3, "horses", label="Horse")
    pid = ls_api.create_project("fail", BOX_CONFIG)["id"]
    select = '{"dataset": ["==", "horses"]}'
    out = run(
        lensdb_for_ls,
        label_studio,
        "labelstudio",
        "push",
        "--project",
        str(pid),
        "--constraints",
        select,
        "--predictions",
        ok=False,
    )
    assert "lacks these labels" in out and "Horse" in out and "Nothing was sent" in out
    assert project_counts(ls_api, pid) == (0, 0)
    r, _ = db.query(
        [
            {
                "FindEntity": {
                    "with_class": "LS_push",
                    "constraints": {"LS_project_id": ["==", pid]},
                    "results": {"count": True},
                }
            }
        ]
    )
    assert r[0]["FindEntity"]["count"] == 0
    out = run(lensdb_for_ls, label_studio, "labelstudio", "push", "--project", "99999", ok=False)
    assert "project id" in out
    env = {"LENSDB_PASSWORD": lensdb_for_ls.admin_password}
    bad = CliRunner().invoke(
        main,
        [
            "labelstudio",
            "push",
            "--ls-url",
            label_studio.url,
            "--ls-token",
            "wrong-token",
            "--project",
            str(pid),
            "--lensdb",
            f"127.0.0.1:{lensdb_for_ls.port}",
        ],
        env=env,
    )
    assert bad.exit_code == 1 and "refused the token" in bad.output
    down = CliRunner().invoke(
        main,
        [
            "labelstudio",
            "push",
            "--ls-url",
            label_studio.url,
            "--ls-token",
            LS_TOKEN,
            "--project",
            str(pid),
            "--lensdb",
            "127.0.0.1:9",
        ],
        env=env,
    )
    assert down.exit_code == 1 and "Is the lensdb server running" in down.output
    nols = CliRunner().invoke(
        main,
        [
            "labelstudio",
            "pull",
            "--ls-url",
            "http://127.0.0.1:9",
            "--ls-token",
            "x",
            "--project",
            "1",
        ],
        env=env,
    )
    assert nols.exit_code == 1 and "does not answer" in nols.output


# ---- pull -----------------------------------------------------------------------------------


def _result(box_x: float = 10, with_polygon: bool = True, choice: str = "good") -> list[dict]:
    out = [
        {
            "id": "b1",
            "from_name": "label",
            "to_name": "image",
            "type": "rectanglelabels",
            "original_width": 64,
            "original_height": 48,
            "value": {
                "x": box_x,
                "y": 10,
                "width": 25,
                "height": 50,
                "rotation": 0,
                "rectanglelabels": ["Dog"],
            },
        },
        {
            "id": "k1",
            "from_name": "kp",
            "to_name": "image",
            "type": "keypointlabels",
            "original_width": 64,
            "original_height": 48,
            "value": {"x": 50, "y": 50, "width": 1, "keypointlabels": ["Eye"]},
        },
        {
            "id": "c1",
            "from_name": "quality",
            "to_name": "image",
            "type": "choices",
            "value": {"choices": [choice]},
        },
    ]
    if with_polygon:
        out.append(
            {
                "id": "p1",
                "from_name": "polygon",
                "to_name": "image",
                "type": "polygonlabels",
                "original_width": 64,
                "original_height": 48,
                "value": {
                    "points": [[10, 10], [50, 10], [30, 60]],
                    "closed": True,
                    "polygonlabels": ["Cat"],
                },
            }
        )
    return out


def snapshot(db, pid: int) -> dict:
    """What lensdb holds for a project's annotations, without lensdb's own ids."""
    owned = {"LS_annotation": ["!=", None], "LS_project_id": ["==", pid]}
    r, _ = db.query(
        [
            {
                "FindEntity": {
                    "with_class": Q.ANNOTATION_CLASS,
                    "constraints": {"LS_project_id": ["==", pid]},
                    "results": {
                        "list": ["LS_id", "LS_task_id", "LS_choices_quality", "LS_result_count"]
                    },
                }
            },
            {
                "FindBoundingBox": {
                    "constraints": owned,
                    "coordinates": True,
                    "labels": True,
                    "blobs": False,
                    "results": {"list": ["LS_id", "LS_annotation", "LS_x"]},
                }
            },
            {
                "FindPolygon": {
                    "constraints": owned,
                    "vertices": True,
                    "labels": True,
                    "blobs": False,
                    "results": {"list": ["LS_id", "LS_annotation"]},
                }
            },
            {
                "FindEntity": {
                    "with_class": Q.KEYPOINT_CLASS,
                    "constraints": owned,
                    "results": {"list": ["LS_id", "LS_annotation", "x", "y", "label"]},
                }
            },
        ]
    )

    def rows(i: int, name: str) -> list:
        ents = r[i][name].get("entities") or []
        return sorted(sorted((k, str(v)) for k, v in e.items() if k != "_uniqueid") for e in ents)

    return {
        "annotations": rows(0, "FindEntity"),
        "boxes": rows(1, "FindBoundingBox"),
        "polygons": rows(2, "FindPolygon"),
        "keypoints": rows(3, "FindEntity"),
    }


def box_uid(db, annotation_id: int) -> str | None:
    r, _ = db.query(
        [
            {
                "FindBoundingBox": {
                    "constraints": {"LS_annotation": ["==", str(annotation_id)]},
                    "uniqueids": True,
                    "blobs": False,
                }
            }
        ]
    )
    ents = r[0]["FindBoundingBox"].get("entities") or []
    return ents[0]["_uniqueid"] if ents else None


def _left_in_label_studio(ls_api: LabelStudio, pid: int) -> tuple[list, list]:
    """The temporary views and export snapshots a full pull left in the project (none, it should)."""
    views = ls_api.request("GET", "/api/dm/views/", "list views", params={"project": pid}) or []
    title = SnapshotReader.VIEW_TITLE
    temporary = [v["id"] for v in views if (v.get("data") or {}).get("title") == title]
    exports = ls_api.request("GET", f"/api/projects/{pid}/exports/", "list exports") or []
    return temporary, [e["id"] for e in exports]


def test_a_full_pull_stopped_early_deletes_its_view(ls_api, small_project) -> None:
    """The snapshot reader's view is a tab every user of the project sees: it goes when the reader
    is closed mid-way (a pull that fails on lensdb's side stops its reader), not only at the end."""
    pid, tasks = small_project
    project = ls_api.project(pid)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pull_module, "SNAPSHOT_ANNOTATED", 0.0)
        patch.setattr(pull_module, "SNAPSHOT_RANGE", 1)
        patch.setattr(pull_module, "SNAPSHOT_EDGE", 1)
        reader = pull_module.ReadAhead(pull_module._every_task(ls_api, project, 1, {}), depth=1)
        pages = iter(reader)
        got = [next(pages), next(pages)]  # the empty first page, then task 1
        assert [t["id"] for t in got[1].tasks] == tasks[:1]
        assert len(_left_in_label_studio(ls_api, pid)[0]) == 1  # the view, while reading
        reader.close()
    assert _left_in_label_studio(ls_api, pid) == ([], [])


@pytest.fixture(scope="module")
def small_project(lensdb_for_ls, label_studio, ls_api):
    add_images(lensdb_for_ls.connector(), 6, "pull")
    pid = ls_api.create_project("pull", BOX_CONFIG)["id"]
    run(
        lensdb_for_ls,
        label_studio,
        "labelstudio",
        "push",
        "--project",
        str(pid),
        "--constraints",
        '{"dataset": ["==", "pull"]}',
        "--predictions",
    )
    tasks = sorted(t["id"] for t in ls_api.changed_tasks(pid, None, 100))
    return pid, tasks


def test_pull_brings_exactly_the_changes(
    lensdb_for_ls, label_studio, ls_api, small_project, monkeypatch
) -> None:
    pid, tasks = small_project
    db = lensdb_for_ls.connector()
    pull = ("labelstudio", "pull", "--project", str(pid))
    assert "wrote 0 annotation(s), deleted 0" in run(lensdb_for_ls, label_studio, *pull)
    a1 = ls_api.create_annotation(tasks[0], _result())
    a2 = ls_api.create_annotation(tasks[1], _result(box_x=5, with_polygon=False, choice="bad"))
    out = run(lensdb_for_ls, label_studio, *pull)
    assert "wrote 2 annotation(s), deleted 0" in out
    snap = snapshot(db, pid)
    assert len(snap["annotations"]) == 2 and len(snap["boxes"]) == 2
    assert len(snap["polygons"]) == 1 and len(snap["keypoints"]) == 2
    assert ("LS_choices_quality", '["good"]') in snap["annotations"][0] + snap["annotations"][1]
    # The prediction boxes pushed earlier are untouched: annotation regions are separate objects.
    r, _ = db.query(
        [
            {
                "FindBoundingBox": {
                    "constraints": {"LS_annotation": ["==", None]},
                    "results": {"count": True},
                    "blobs": False,
                }
            }
        ]
    )
    assert r[0]["FindBoundingBox"]["count"] >= 6
    # Nothing changed: nothing written.
    assert "wrote 0 annotation(s), deleted 0" in run(lensdb_for_ls, label_studio, *pull)
    # Update: the box moves in place (same lensdb object), the polygon is removed, the choice changes.
    before = box_uid(db, a1["id"])
    ls_api.update_annotation(a1["id"], _result(box_x=30, with_polygon=False, choice="bad"))
    out = run(lensdb_for_ls, label_studio, *pull)
    assert "wrote 1 annotation(s), deleted 0" in out
    assert box_uid(db, a1["id"]) == before
    snap = snapshot(db, pid)
    assert len(snap["polygons"]) == 0
    assert any(("LS_x", "30.0") in b for b in snap["boxes"])
    # Delete: the annotation and all its regions go.
    ls_api.delete_annotation(a2["id"])
    out = run(lensdb_for_ls, label_studio, *pull)
    assert "wrote 0 annotation(s), deleted 1" in out
    snap = snapshot(db, pid)
    assert len(snap["annotations"]) == 1 and len(snap["boxes"]) == 1 and len(snap["keypoints"]) == 1
    assert "wrote 0 annotation(s), deleted 0" in run(lensdb_for_ls, label_studio, *pull)
    # --full equals incremental: wipe what pull wrote, pull everything, compare.
    ls_api.create_annotation(tasks[2], _result(box_x=12))
    run(lensdb_for_ls, label_studio, *pull)
    incremental = snapshot(db, pid)
    for row in incremental["annotations"]:
        db.query(Q.delete_annotation_query(int(dict(row)["LS_id"]), pid))
    assert snapshot(db, pid)["annotations"] == []
    out = run(lensdb_for_ls, label_studio, *pull, "--full")
    assert "wrote 2 annotation(s)" in out
    assert snapshot(db, pid) == incremental
    # The same in pages of one task (an export per id range of one), and read the other ways a
    # full pull can read a project (see pull.full_read_way): snapshots by id range (one range, and
    # ranges of one or two ids: the view moves), ids too sparse for ranges, a small project in one
    # export, a big one by ids listed 4 pages at a time then exported a page at a time. Ranges
    # leave out tasks without annotations; the other ways read all 6.
    snapshots = {"SNAPSHOT_ANNOTATED": 0.0}
    ways = [
        ("2", {}),
        ("6", snapshots),
        ("6", {**snapshots, "SNAPSHOT_RANGE": 2, "SNAPSHOT_EDGE": 1}),
        ("6", {"DENSE_IDS": 2.0}),
        ("6", {"DENSE_IDS": 2.0, "WHOLE_EXPORT_TASKS": 0}),
    ]
    for read, settings in ways:
        for row in incremental["annotations"]:
            db.query(Q.delete_annotation_query(int(dict(row)["LS_id"]), pid))
        with monkeypatch.context() as patch:
            for name, value in settings.items():
                patch.setattr(pull_module, name, value)
            out = run(lensdb_for_ls, label_studio, *pull, "--full", "--page-size", "1")
        assert f"read {read} changed task(s); wrote 2 annotation(s)" in out, settings
        assert snapshot(db, pid) == incremental, settings
        assert _left_in_label_studio(ls_api, pid) == ([], []), settings
    # A task left with no annotation in Label Studio (ranges do not read it) keeps none in lensdb.
    stray = {"id": 999_999, "task": tasks[3], "result": [], "updated_at": "2026-01-01T00:00:00Z"}
    db.query(A.save_query(stray, ls_api.task(tasks[3]), ls_api.project(pid), new=True))
    assert len(snapshot(db, pid)["annotations"]) == len(incremental["annotations"]) + 1
    out = run(lensdb_for_ls, label_studio, *pull, "--full")
    assert "wrote 0 annotation(s), deleted 1" in out
    assert snapshot(db, pid) == incremental
    # A full pull's cursor is its start: a change made right after it is the next pull's.
    ls_api.update_annotation(a1["id"], _result(box_x=44, with_polygon=False, choice="good"))
    assert "wrote 1 annotation(s), deleted 0" in run(lensdb_for_ls, label_studio, *pull)


def test_pull_pages_through_a_bulk_update_larger_than_a_page(
    lensdb_for_ls, label_studio, ls_api
) -> None:
    """Label Studio's bulk actions stamp many tasks with one updated_at; ordered by time alone, ties
    come back in no set order, so a tie bigger than a page must still arrive whole."""
    add_images(lensdb_for_ls.connector(), 7, "bulk")
    pid = ls_api.create_project("bulk", BOX_CONFIG)["id"]
    run(
        lensdb_for_ls,
        label_studio,
        "labelstudio",
        "push",
        "--project",
        str(pid),
        "--constraints",
        '{"dataset": ["==", "bulk"]}',
    )
    tasks = sorted(t["id"] for t in ls_api.changed_tasks(pid, None, 100))
    assert len(tasks) == 7
    for i, task in enumerate(tasks):
        ls_api.create_annotation(task, _result(box_x=1 + i))
    # What a bulk update leaves: every task of the project at one instant (written straight into
    # Label Studio's database, as its own bulk update does).
    conn = sqlite3.connect(label_studio.data_dir / "label_studio.sqlite3", timeout=30)
    with conn:
        conn.execute(
            "UPDATE task SET updated_at = '2026-11-26 01:02:03.456789' WHERE project_id = ?", (pid,)
        )
    conn.close()
    assert {t["updated_at"] for t in ls_api.changed_tasks(pid, None, 100)} == {
        "2026-11-26T01:02:03.456789Z"
    }
    out = run(
        lensdb_for_ls,
        label_studio,
        "labelstudio",
        "pull",
        "--project",
        str(pid),
        "--page-size",
        "3",
    )
    assert "wrote 7 annotation(s)" in out
    snap = snapshot(lensdb_for_ls.connector(), pid)
    assert sorted(int(dict(a)["LS_task_id"]) for a in snap["annotations"]) == tasks
    assert "wrote 0 annotation(s)" in run(
        lensdb_for_ls,
        label_studio,
        "labelstudio",
        "pull",
        "--project",
        str(pid),
        "--page-size",
        "3",
    )


# ---- webhook ----------------------------------------------------------------------------------


def _wait_for(fn, timeout: float = 1.0):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def test_webhook_applies_events_and_pull_catches_up(lensdb_for_ls, label_studio, ls_api) -> None:
    add_images(lensdb_for_ls.connector(), 3, "hook")
    pid = ls_api.create_project("hook", BOX_CONFIG)["id"]
    run(
        lensdb_for_ls,
        label_studio,
        "labelstudio",
        "push",
        "--project",
        str(pid),
        "--constraints",
        '{"dataset": ["==", "hook"]}',
    )
    tasks = sorted(t["id"] for t in ls_api.changed_tasks(pid, None, 100))
    receiver = f"http://127.0.0.1:{lensdb_for_ls.http_port}"
    # Refused without the secret.
    assert (
        httpx.post(
            f"{receiver}/labelstudio/webhook", json={"action": "ANNOTATION_CREATED"}
        ).status_code
        == 403
    )
    out = CliRunner().invoke(
        main,
        [
            "labelstudio",
            "webhook",
            "register",
            "--ls-url",
            label_studio.url,
            "--ls-token",
            LS_TOKEN,
            "--project",
            str(pid),
            "--receiver",
            receiver,
            "--secret",
            WEBHOOK_SECRET,
        ],
    )
    assert out.exit_code == 0 and "registered webhook" in out.output, out.output
    again = CliRunner().invoke(
        main,
        [
            "labelstudio",
            "webhook",
            "register",
            "--ls-url",
            label_studio.url,
            "--ls-token",
            LS_TOKEN,
            "--project",
            str(pid),
            "--receiver",
            receiver,
            "--secret",
            WEBHOOK_SECRET,
        ],
    )
    assert "updated webhook" in again.output and len(ls_api.webhooks(pid)) == 1
    db = lensdb_for_ls.connector()
    a = ls_api.create_annotation(tasks[0], _result())
    t0 = time.monotonic()
    assert _wait_for(lambda: len(snapshot(db, pid)["annotations"]) == 1)
    assert time.monotonic() - t0 < 1.0
    assert len(snapshot(db, pid)["polygons"]) == 1
    ls_api.update_annotation(a["id"], _result(box_x=40, with_polygon=False))
    assert _wait_for(lambda: not snapshot(db, pid)["polygons"])
    assert any(("LS_x", "40.0") in b for b in snapshot(db, pid)["boxes"])
    ls_api.delete_annotation(a["id"])
    assert _wait_for(lambda: not snapshot(db, pid)["annotations"])
    # A deleted task takes its annotations along, and Label Studio reports only the task.
    ls_api.create_annotation(tasks[0], _result())
    assert _wait_for(lambda: len(snapshot(db, pid)["annotations"]) == 1)
    ls_api.request("DELETE", f"/api/tasks/{tasks[0]}/", "delete a task")
    assert _wait_for(lambda: not snapshot(db, pid)["annotations"])
    assert snapshot(db, pid)["boxes"] == [] and snapshot(db, pid)["keypoints"] == []
    # Receiver down: Label Studio saves anyway; the next pull catches up.
    lensdb_for_ls.stop()
    try:
        b = ls_api.create_annotation(tasks[1], _result())
        c = ls_api.create_annotation(tasks[2], _result(with_polygon=False))
        ls_api.update_annotation(c["id"], _result(box_x=33, with_polygon=False))
    finally:
        lensdb_for_ls.start()
    db = lensdb_for_ls.connector()
    assert snapshot(db, pid)["annotations"] == []
    out = run(lensdb_for_ls, label_studio, "labelstudio", "pull", "--project", str(pid))
    assert "wrote 2 annotation(s)" in out
    snap = snapshot(db, pid)
    assert {dict(a)["LS_id"] for a in snap["annotations"]} == {str(b["id"]), str(c["id"])}
    assert any(("LS_x", "33.0") in box for box in snap["boxes"])


def test_personal_access_token(label_studio, ls_api) -> None:
    """A personal access token (JWT refresh) works as --ls-token: exchanged for access tokens."""
    r = ls_api._send("POST", "/api/token/", json={})
    assert r.status_code == 201, r.text
    pat = LabelStudio(label_studio.url, r.json()["token"])
    try:
        assert pat.personal
        pid = ls_api.create_project("pat", BOX_CONFIG)["id"]
        assert pat.project(pid)["id"] == pid
    finally:
        pat.close()
