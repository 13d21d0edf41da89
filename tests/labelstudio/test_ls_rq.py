"""With Redis and an RQ worker (LENSDB_REDIS_URL), syncs and annotation exports run as background jobs.

Skipped when `redis-server` is not installed (apt-get install redis-server).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import LabelStudio, free_port, wait_until
from .datasets import LABEL_CONFIG, load_images
from .test_ls_target import box, stored

if not shutil.which("redis-server"):
    pytest.skip("redis-server is not installed", allow_module_level=True)


@pytest.fixture(scope="module")
def rq_label_studio(ls_lensdb, tmp_path_factory):
    from lensdb.labelstudio import launcher

    root = tmp_path_factory.mktemp("ls-rq")
    port = free_port()
    redis = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    ls = LabelStudio(root / "data", ls_lensdb, env={"LENSDB_REDIS_URL": url})
    worker = None
    try:
        ls.start()
        import label_studio

        ls_dir = Path(label_studio.__file__).parent
        env = {
            **launcher.label_studio_env(
                launcher.LabelStudioOptions(data_dir=ls.data_dir / "labelstudio")
            ),
            "LENSDB_REDIS_URL": url,
        }
        with open(root / "rqworker.log", "ab") as log:
            worker = subprocess.Popen(
                [sys.executable, str(ls_dir / "manage.py"), "rqworker", "default", "low"],
                env=env,
                cwd=ls_dir,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        yield ls
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(30)
        ls.stop()
        redis.terminate()
        redis.wait(30)


def test_sync_and_export_run_as_rq_jobs(rq_label_studio: LabelStudio, db):
    ls = rq_label_studio
    tag, images = load_images(db, 5, 5, seed=51)
    pid = ls.create_project("rq jobs", LABEL_CONFIG)
    source = ls.add_source(pid, constraints=json.dumps({"dataset": ["==", tag]}))
    assert ls.sync_source(source["id"])["status"] in ("queued", "in_progress", "completed")
    assert wait_until(lambda: len(ls.tasks(pid)) == 5, timeout=60), "the RQ worker did not sync"
    ls.add_target(pid)
    task = ls.tasks(pid)[0]
    size = (task["meta"]["lensdb"]["width"], task["meta"]["lensdb"]["height"])
    ann = ls.api(
        "POST",
        f"/api/tasks/{task['id']}/annotations/",
        201,
        json={"result": [box("rq", 5, 5, 10, 10, size=size)]},
    ).json()
    t0 = time.monotonic()
    assert wait_until(lambda: stored(db, ann["id"], pid)["boxes"].get("rq"), timeout=60), (
        "the RQ worker did not export"
    )
    assert time.monotonic() - t0 < 60
