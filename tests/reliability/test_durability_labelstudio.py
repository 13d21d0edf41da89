"""Label Studio killed with SIGKILL in the middle of saving loses no annotation (issue 12).

A save commits the annotation and its outbox row in Label Studio's database, then sends the row
to lensdb. Here lensdb is frozen (SIGSTOP: it accepts connections and answers nothing), so
the first save's send hangs holding the outbox lease while the next saves are reported saved
(201) with their rows waiting. Then every Label Studio process gets SIGKILL, lensdb is thawed,
and Label Studio is started again: every annotation Label Studio holds must reach lensdb, well
before the dead sender's lease (120 s) would have run out.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("label_studio")

from conftest import LensdbServer  # noqa: E402
from labelstudio.conftest import LabelStudio, wait_until  # noqa: E402
from labelstudio.datasets import LABEL_CONFIG, load_images  # noqa: E402


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                kids = [int(k) for k in (task / "children").read_text().split()]
            except OSError:
                continue
            out += kids
            todo += kids
    return out


def kill_tree(ls: LabelStudio) -> None:
    """SIGKILL Label Studio and every process it started, children first."""
    assert ls.proc is not None
    for pid in [*reversed(descendants(ls.proc.pid)), ls.proc.pid]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    ls.proc.wait(30)
    ls.proc = None


def box(rid: str, size: tuple[int, int]) -> dict:
    return {
        "id": rid,
        "type": "rectanglelabels",
        "from_name": "box",
        "to_name": "image",
        "original_width": size[0],
        "original_height": size[1],
        "image_rotation": 0,
        "value": {
            "x": 10,
            "y": 10,
            "width": 20,
            "height": 20,
            "rotation": 0,
            "rectanglelabels": ["Cat"],
        },
    }


def in_lensdb(db, project: int) -> dict[str, list]:
    """LS_id -> the box ids lensdb holds for each of the project's annotations."""
    r, _ = db.query(
        [
            {
                "FindEntity": {
                    "with_class": "LS_annotation",
                    "constraints": {"LS_project_id": ["==", project]},
                    "results": {"list": ["LS_id", "LS_data"]},
                }
            }
        ]
    )
    rows = r[0]["FindEntity"].get("entities") or []
    return {e["LS_id"]: [x["id"] for x in json.loads(e["LS_data"])["result"]] for e in rows}


def test_annotations_reported_saved_survive_sigkill_of_label_studio(tmp_path: Path) -> None:
    lensdb = LensdbServer(tmp_path / "lensdb" / "data").start()
    (tmp_path / "ls").mkdir()
    ls = LabelStudio(tmp_path / "ls" / "data", lensdb)
    try:
        ls.start()
        db = lensdb.connector(use_ssl=False)
        tag, images = load_images(db, 8, 8, seed=33)
        pid = ls.create_project("sigkill", LABEL_CONFIG)
        source = ls.add_source(
            pid, constraints=json.dumps({"dataset": ["==", tag]}), task_data_properties="name"
        )
        assert ls.sync_source(source["id"])["last_sync_count"] == 8
        ls.add_target(pid)
        tasks = ls.tasks(pid)
        size = {img.name: (img.width, img.height) for img in images}

        def save(task: dict, rid: str) -> int:
            body = {"result": [box(rid, size[task["data"]["name"]])]}
            return ls.api("POST", f"/api/tasks/{task['id']}/annotations/", 201, json=body).json()[
                "id"
            ]

        delivered = [save(t, f"up{i}") for i, t in enumerate(tasks[:2])]  # lensdb answering
        assert wait_until(lambda: len(in_lensdb(db, pid)) == 2, timeout=60)

        lensdb.proc.send_signal(signal.SIGSTOP)  # frozen: connections hang, nothing answers
        try:
            hung = threading.Thread(target=lambda: _try(save, tasks[2], "hung"), daemon=True)
            hung.start()  # its send takes the outbox lease and hangs
            time.sleep(3)
            reported = [save(t, f"queued{i}") for i, t in enumerate(tasks[3:8])]
            kill_tree(ls)
        finally:
            lensdb.proc.send_signal(signal.SIGCONT)

        started = time.monotonic()
        ls.start()
        held = {
            str(a["id"])
            for t in tasks
            for a in ls.api("GET", f"/api/tasks/{t['id']}/annotations/", 200).json()
        }
        assert {str(i) for i in delivered + reported} <= held  # reported saved: in Label Studio
        got = wait_until(lambda: (s := in_lensdb(db, pid)) and held <= set(s) and s, timeout=90)
        took = time.monotonic() - started
        assert got and held <= set(got), (held, got, ls.log()[-3000:])
        for i, ann in enumerate(reported):
            assert got[str(ann)] == [f"queued{i}"]
        # The killed sender's lease was taken over, not waited out (LEASE_SECONDS = 120).
        full_log = ls.data_dir / "labelstudio" / "label-studio.log"
        assert "took over the outbox lease of a process that is gone" in full_log.read_text()
        print(
            f"{len(held)} annotations held by Label Studio, all in lensdb {took:.0f} s after "
            f"the restart began ({len(reported)} were queued when it was killed)"
        )
    finally:
        if ls.proc is not None:
            kill_tree(ls)
        lensdb.stop()


def _try(fn, *args) -> None:
    try:
        fn(*args)
    except Exception:  # the save's request dies with Label Studio
        pass
