"""COCO in and out through the real CLI (a child process), checked with pycocotools."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import assert_same_boxes, boxes_by_file, coco_dataset, count, query, run_cli
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def test_coco_round_trip_through_the_cli(tmp_path: Path) -> None:
    src = coco_dataset(tmp_path / "src")
    data = tmp_path / "db"
    r = run_cli("import", "coco", str(src), "--images", str(tmp_path / "src/images"),
                "--dataset", "pets", "--data", str(data))  # fmt: skip
    assert "images added: 4" in r.stderr
    assert "RLE mask holds no region" in r.stderr  # the all-zero mask is reported
    assert count(data, "FindImage") == 4
    # 2 boxes + 1 person box per image + 2 RLE boxes; polygons: 1 per image + 1 from the RLE.
    assert count(data, "FindBoundingBox") == 14
    assert count(data, "FindPolygon") == 5
    assert count(data, "FindEntity", {"with_class": "LS_keypoint"}) == 8
    # Ground truth is stored as human annotations, the Label Studio layer's way.
    assert count(data, "FindBoundingBox", {"constraints": {"LS_annotation": ["==", None]}}) == 0
    assert count(data, "FindEntity", {"with_class": "LS_annotation"}) == 4
    img = query(data, [{"FindImage": {"blobs": False, "constraints": {"coco_id": ["==", 100]},
                                      "results": {"all_properties": True}}}])  # fmt: skip
    props = img[0]["FindImage"]["entities"][0]
    assert props["guid"] == "pets/img000.jpg" and props["dataset"] == "pets"
    assert props["date_captured"] == "2024-01-02" and props["license"] == 1

    out = tmp_path / "out" / "instances.json"
    run_cli("export", "coco", str(out), "--data", str(data))
    exported = json.loads(out.read_text())
    original = json.loads(src.read_text())
    assert_same_boxes(boxes_by_file(original), boxes_by_file(exported))
    assert sorted(p.name for p in (out.parent / "images").iterdir()) == sorted(
        i["file_name"] for i in original["images"]
    )
    ds = COCO(str(out))
    assert len(ds.getImgIds()) == 4
    assert {c["name"]: c["id"] for c in ds.loadCats(ds.getCatIds())} == {
        "cat": 1, "dog": 2, "person": 3}  # fmt: skip
    person = [a for a in exported["annotations"] if a["category_id"] == 3][0]
    assert person["keypoints"] == [10.5, 25.25, 2, 0, 0, 0, 30.75, 35.0, 1]
    dog = [a for a in exported["annotations"] if a["category_id"] == 2][0]
    assert dog["segmentation"] == [[20.5, 10.0, 35.5, 10.0, 35.5, 19.333, 20.5, 19.333]]
    assert ds.annToMask(dog).sum() > 0


def test_coco_predictions_export_works_with_loadres_and_cocoeval(tmp_path: Path) -> None:
    gt = coco_dataset(tmp_path / "src")
    preds = coco_dataset(tmp_path / "src", predictions=True)
    data = tmp_path / "db"
    images = str(tmp_path / "src/images")
    run_cli("import", "coco", str(gt), "--images", images, "--dataset", "d", "--data", str(data))
    # The same images with scored detections: already there, so only... nothing is added.
    r = run_cli("import", "coco", str(preds), "--images", images, "--dataset", "d",
                "--data", str(data))  # fmt: skip
    assert "already there: 4" in r.stderr
    run_cli("import", "coco", str(preds), "--images", images, "--dataset", "model",
            "--data", str(data))  # fmt: skip
    assert count(data, "FindBoundingBox", {"constraints": {"LS_annotation": ["==", None]}}) == 12

    gt_out, pred_out = tmp_path / "gt.json", tmp_path / "pred.json"
    sel = json.dumps({"dataset": ["==", "d"]})
    run_cli("export", "coco", str(gt_out), "--data", str(data), "--source", "annotations",
            "--constraints", sel, "--media", "none")  # fmt: skip
    run_cli("export", "coco", str(pred_out), "--data", str(data), "--source", "predictions",
            "--constraints", json.dumps({"dataset": ["==", "model"]}), "--media", "none")  # fmt: skip
    results = json.loads(pred_out.read_text())
    assert isinstance(results, list) and all("score" in r for r in results)
    ground = COCO(str(gt_out))
    detections = ground.loadRes(str(pred_out))
    ev = COCOeval(ground, detections, "bbox")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    # The predictions are the ground truth boxes, so precision is perfect.
    assert ev.stats[0] > 0.99


def test_idempotent_reimport_and_dry_run(tmp_path: Path) -> None:
    src = coco_dataset(tmp_path / "src")
    data = tmp_path / "db"
    args = ("import", "coco", str(src), "--images", str(tmp_path / "src/images"), "--dataset", "pets",
            "--data", str(data))  # fmt: skip
    dry = run_cli(*args, "--dry-run")
    assert "dry run" in dry.stderr and "images added: 4" in dry.stderr
    assert not data.exists()  # a dry run creates no database
    run_cli(*args)
    before = [count(data, c) for c in ("FindImage", "FindBoundingBox", "FindPolygon")]
    assert "already there: 4" in run_cli(*args, "--dry-run").stderr
    again = run_cli(*args)
    assert "images added: 0, already there: 4" in again.stderr
    assert [count(data, c) for c in ("FindImage", "FindBoundingBox", "FindPolygon")] == before
    assert count(data, "FindEntity", {"with_class": "Category"}) == 3
