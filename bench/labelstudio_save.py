"""Annotation save -> its regions visible in lensdb: p50/p95 over N saves through Label Studio's REST API.

Each save posts an annotation with 3 boxes and a polygon, then polls lensdb (aperturedb SDK) until all
four regions are there. Baseline: the same saves in a project without a lensdb target storage.

Usage: python bench/labelstudio_save.py [--saves 500]
"""

from __future__ import annotations

import argparse
import json
import time

from labelstudio_common import load_images, percentiles, stack


def result(i: int) -> list[dict]:
    def box(rid: str, x: float) -> dict:
        return {
            "id": rid,
            "type": "rectanglelabels",
            "from_name": "box",
            "to_name": "image",
            "original_width": 64,
            "original_height": 48,
            "image_rotation": 0,
            "value": {
                "x": x,
                "y": 10 + i % 50,
                "width": 10,
                "height": 10,
                "rotation": 0,
                "rectanglelabels": ["Cat"],
            },
        }

    poly = {
        "id": "p",
        "type": "polygonlabels",
        "from_name": "poly",
        "to_name": "image",
        "original_width": 64,
        "original_height": 48,
        "value": {"points": [[5, 5], [30, 5], [20, 30]], "polygonlabels": ["Road"]},
    }
    return [box("a", 5), box("b", 30), box("c", 60), poly]


def visible(db, annotation_id: int) -> bool:
    r, _ = db.query(
        [
            {
                "FindBoundingBox": {
                    "constraints": {"LS_annotation": ["==", str(annotation_id)]},
                    "results": {"count": True},
                }
            },
            {
                "FindPolygon": {
                    "constraints": {"LS_annotation": ["==", str(annotation_id)]},
                    "results": {"count": True},
                }
            },
        ]
    )
    return r[0]["FindBoundingBox"]["count"] == 3 and r[1]["FindPolygon"]["count"] == 1


def run(s, projects: list[int], saves: int, db) -> dict[int, tuple[list[float], list[float]]]:
    """`saves` saves in each project, interleaved (one here, one there), so both see the same
    machine: project -> (save request ms, save -> regions visible in lensdb ms)."""
    tasks = {
        p: [
            t["id"] for t in s.api("GET", f"/api/tasks/?project={p}&page_size=1000").json()["tasks"]
        ]
        for p in projects
    }
    out: dict[int, tuple[list[float], list[float]]] = {p: ([], []) for p in projects}
    for i in range(saves):
        for p, (post_ms, visible_ms) in out.items():
            t0 = time.perf_counter()
            ann = s.api(
                "POST", f"/api/tasks/{tasks[p][i % len(tasks[p])]}/annotations/",
                json={"result": result(i)},
            ).json()  # fmt: skip
            post_ms.append(1000 * (time.perf_counter() - t0))
            if p != projects[0]:
                continue  # the baseline project has no target storage
            while not visible(db, ann["id"]):
                if time.perf_counter() - t0 > 60:
                    raise RuntimeError(f"annotation {ann['id']} not in lensdb after 60 s")
                time.sleep(0.002)
            visible_ms.append(1000 * (time.perf_counter() - t0))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--saves", type=int, default=500)
    args = ap.parse_args()
    with stack() as s:
        db = s.connector()
        load_images(db, 50, tag="save")
        projects = []
        for title, target in (("with lensdb target", True), ("without target storage", False)):
            p = s.project(title)
            sid = s.lensdb_storage(p, constraints=json.dumps({"tag": ["==", "save"]}))
            s.api("POST", f"/api/storages/lensdb/{sid}/sync")
            if target:
                s.lensdb_storage(p, target=True)
            projects.append(p)
        run(s, projects, 10, db)  # warm up
        got = run(s, projects, args.saves, db)
    post_ms, visible_ms = got[projects[0]]
    base_ms, _ = got[projects[1]]
    p50, p95 = percentiles(visible_ms)
    q50, q95 = percentiles(post_ms)
    b50, b95 = percentiles(base_ms)
    print(
        f"\n{args.saves} annotation saves per project (3 boxes + 1 polygon each), interleaved, "
        "Label Studio dev server, no Redis:"
    )
    print(f"  save -> regions visible in lensdb   p50 {p50:6.1f} ms   p95 {p95:6.1f} ms")
    print(f"  save request with lensdb target     p50 {q50:6.1f} ms   p95 {q95:6.1f} ms")
    print(f"  save request without target storage p50 {b50:6.1f} ms   p95 {b95:6.1f} ms")
    print(
        f"  added by the plugin                 p50 {q50 - b50:6.1f} ms   p95 {q95 - b95:6.1f} ms"
        "   (target: <= 10 ms at p95)"
    )


if __name__ == "__main__":
    main()
