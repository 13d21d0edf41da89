"""A Label Studio JSON export from lensdb imports as is into a real (stock) Label Studio, and what
Label Studio exports again imports back into lensdb with the same boxes."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from helpers import coco_dataset, count

from lensdb.cli import main


def cli(*args: str) -> None:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output


def test_export_imports_into_label_studio_and_back(tmp_path: Path, ls_api) -> None:
    src = coco_dataset(tmp_path / "src", n=3)
    preds = coco_dataset(tmp_path / "src", n=3, predictions=True)
    data = tmp_path / "db"
    images = str(tmp_path / "src/images")
    cli("import", "coco", str(src), "--images", images, "--dataset", "gt", "--data", str(data))
    cli("import", "coco", str(preds), "--images", images, "--dataset", "m", "--data", str(data))
    out = tmp_path / "ls" / "tasks.json"
    cli("export", "labelstudio", str(out), "--data", str(data), "--media", "link",
        "--link-base", "http://127.0.0.1:55556")  # fmt: skip
    tasks = json.loads(out.read_text())
    config = (out.parent / "label_config.xml").read_text()

    pid = ls_api.create_project("lensdb export", config)["id"]
    ids = ls_api.import_tasks(pid, tasks)
    assert len(ids) == 6
    exported = ls_api.request(
        "GET",
        f"/api/projects/{pid}/export",
        "export the project",
        params={"exportType": "JSON", "download_all_tasks": "true"},
    )
    assert len(exported) == 6
    annotated = [t for t in exported if t["annotations"]]
    predicted = [t for t in exported if t["predictions"]]
    assert len(annotated) == 3 and len(predicted) == 3
    for t in annotated:
        types = sorted(r["type"] for r in t["annotations"][0]["result"])
        # cat, dog and person boxes (+ the box of an RLE on two), the dog polygon, 2 keypoints
        assert types.count("rectanglelabels") in (3, 4) and types.count("keypointlabels") == 2
        assert types.count("polygonlabels") >= 1
        assert t["data"]["image"].startswith("http://127.0.0.1:55556/media/images/")
    for t in predicted:
        # The JSON export lists predictions by id; the task API gives them whole.
        t["predictions"] = ls_api.task(t["id"])["predictions"]
        assert t["predictions"][0]["model_version"] == "lensdb"
        assert all("score" in r for r in t["predictions"][0]["result"])

    # Label Studio's own export, with the images where it says they are, comes back the same.
    media = tmp_path / "media"
    media.mkdir()
    for t in exported:
        uid = t["data"]["image"].rsplit("/", 1)[1]
        name = f"{uid}.jpg"
        t["data"]["image"] = f"/data/upload/{pid}/{name}"
        (media / name).write_bytes(_image_bytes(data, uid))
    back = tmp_path / "ls-export.json"
    back.write_text(json.dumps(exported))
    data2 = tmp_path / "db2"
    cli("import", "labelstudio", str(back), "--images", str(media), "--data", str(data2))
    assert count(data2, "FindImage") == 6
    assert count(data2, "FindBoundingBox") == count(data, "FindBoundingBox")
    assert count(data2, "FindEntity", {"with_class": "LS_annotation"}) == 3
    first = sorted(_boxes(data), key=str)
    second = sorted(_boxes(data2), key=str)
    assert len(first) == len(second)
    for a, b in zip(first, second, strict=True):
        assert a[0] == b[0] and all(abs(p - q) <= 1e-6 for p, q in zip(a[1:], b[1:], strict=True))


def _image_bytes(data: Path, uid: str) -> bytes:
    from lensdb import Database

    with Database(str(data)) as db:
        _, blobs = db.query(
            [{"FindImage": {"blobs": True, "constraints": {"_uniqueid": ["==", uid]}}}]
        )
    return blobs[0]


def _boxes(data: Path) -> list[tuple]:
    from lensdb import Database

    with Database(str(data)) as db:
        r, _ = db.query(
            [{"FindBoundingBox": {"blobs": False, "coordinates": True, "labels": True}}]
        )
    return [
        (e["_label"], *(e["_coordinates"][k] for k in ("x", "y", "width", "height")))
        for e in r[0]["FindBoundingBox"]["entities"]
    ]
