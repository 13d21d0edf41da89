"""Source sync: N images with 2 boxes each from lensdb vs. the same N files from Label Studio's local-files storage.

Both syncs run in the same Label Studio (development server, SQLite, no Redis: the sync runs inside the
request) against the same images. lensdb's sync also creates one prediction per task.

Usage: python bench/labelstudio_sync.py [--images 10000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from labelstudio_common import load_images, stack


def count_tasks(s, project: int) -> tuple[int, int]:
    body = s.api("GET", f"/api/projects/{project}/").json()
    return body["task_number"], body.get("total_predictions_number") or 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=10_000)
    args = ap.parse_args()
    docroot = Path(tempfile.mkdtemp(prefix="lensdb-ls-files-"))
    folder = docroot / "images"
    folder.mkdir()
    env = {
        "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
        "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(docroot),
    }
    with stack(env) as s:
        t = time.perf_counter()
        load_images(s.connector(), args.images, boxes=2, tag="sync", folder=folder)
        print(
            f"loaded {args.images} images with 2 boxes each into lensdb (and as files) in "
            f"{time.perf_counter() - t:.1f} s",
            flush=True,
        )

        p1 = s.project("lensdb sync")
        sid = s.lensdb_storage(p1, constraints=json.dumps({"tag": ["==", "sync"]}))
        t = time.perf_counter()
        r = s.api("POST", f"/api/storages/lensdb/{sid}/sync").json()
        lensdb_s = time.perf_counter() - t
        tasks, preds = count_tasks(s, p1)
        assert r["status"] == "completed" and tasks == args.images, (
            r["status"],
            tasks,
            r.get("traceback"),
        )
        t = time.perf_counter()
        s.api("POST", f"/api/storages/lensdb/{sid}/sync")
        resync_s = time.perf_counter() - t

        p2 = s.project("local files sync")
        lid = s.api(
            "POST",
            "/api/storages/localfiles/",
            json={
                "project": p2,
                "title": "files",
                "path": str(folder),
                "use_blob_urls": True,
                "regex_filter": r".*\.jpg",
            },
        ).json()["id"]
        t = time.perf_counter()
        r2 = s.api("POST", f"/api/storages/localfiles/{lid}/sync").json()
        files_s = time.perf_counter() - t
        ftasks, _ = count_tasks(s, p2)
        assert ftasks == args.images, (r2["status"], ftasks, r2.get("traceback"))

    print(f"\nsource sync of {args.images} images:")
    print(
        f"  lensdb storage      {lensdb_s:7.2f} s  ({args.images / lensdb_s:8.0f} tasks/s, {preds} predictions)"
    )
    print(
        f"  local-files storage {files_s:7.2f} s  ({args.images / files_s:8.0f} tasks/s, no predictions)"
    )
    print(f"  lensdb / local files: {lensdb_s / files_s:.2f}x the time")
    print(f"  lensdb re-sync (nothing new): {resync_s:.2f} s")


if __name__ == "__main__":
    main()
