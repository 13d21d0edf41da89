"""YOLO, Pascal VOC and Label Studio JSON: round trips, layouts, and malformed sources."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from helpers import coco_dataset, count, write_images

from lensdb.cli import main


def cli(*args: str, ok: bool = True):
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def yolo_dataset(root: Path) -> Path:
    for split, n in (("train", 3), ("val", 2)):
        imgs = write_images(root / "images" / split, n, prefix=f"{split}_")
        (root / "labels" / split).mkdir(parents=True)
        for i, (name, _w, _h) in enumerate(imgs):
            lines = [
                f"0 {0.3 + i / 50} 0.4 0.2 {0.1 + i / 1000}",
                "1 0.71 0.6125 0.33 0.25",
                "1 0.1 0.1 0.5 0.12 0.45 0.6 0.15 0.55",  # a segment
            ]
            (root / "labels" / split / Path(name).with_suffix(".txt").name).write_text(
                "\n".join(lines) + "\n"
            )
    (root / "data.yaml").write_text(
        yaml.safe_dump(
            {
                "path": ".",
                "train": "images/train",
                "val": "images/val",
                "names": {0: "car", 1: "bike"},
            }
        )  # fmt: skip
    )
    return root


def read_yolo(root: Path) -> dict[str, list[tuple[int, tuple[float, ...]]]]:
    out = {}
    for f in sorted(root.glob("labels/*/*.txt")):
        rows = []
        for line in f.read_text().splitlines():
            t = line.split()
            rows.append((int(t[0]), tuple(float(v) for v in t[1:])))
        out[f.stem] = sorted(rows)
    return out


def test_yolo_round_trip_keeps_layout_floats_and_segments(tmp_path: Path) -> None:
    src = yolo_dataset(tmp_path / "src")
    data = tmp_path / "db"
    cli("import", "yolo", str(src), "--dataset", "y", "--data", str(data))
    assert count(data, "FindImage", {"constraints": {"split": ["==", "val"]}}) == 2
    assert count(data, "FindBoundingBox") == 10 and count(data, "FindPolygon") == 5
    out = tmp_path / "out"
    cli("export", "yolo", str(out), "--data", str(data), "--split-by", "split")
    doc = yaml.safe_load((out / "data.yaml").read_text())
    assert doc["names"] == {0: "car", 1: "bike"}
    assert doc["train"] == "images/train" and doc["val"] == "images/val"
    assert len(list((out / "images/train").iterdir())) == 3
    assert len(list((out / "labels/val").iterdir())) == 2
    before, after = read_yolo(src), read_yolo(out)
    assert before.keys() == after.keys()
    sizes = {p.stem: (64 + 8 * int(p.stem[-3:]), 48 + 4 * int(p.stem[-3:]))
             for p in src.glob("images/*/*.jpg")}  # fmt: skip
    for stem in before:
        w, h = sizes[stem]
        assert [c for c, _ in before[stem]] == [c for c, _ in after[stem]]
        for (_, a), (_, b) in zip(before[stem], after[stem], strict=True):
            assert len(a) == len(b)  # segments stay segment lines
            scale = [w if k % 2 == 0 else h for k in range(len(a))]
            assert all(abs((x - y) * s) <= 1e-6 for x, y, s in zip(a, b, scale, strict=True))


def test_voc_round_trip_parses_and_keeps_floats(tmp_path: Path) -> None:
    src = tmp_path / "voc"
    imgs = write_images(src / "JPEGImages", 3)
    (src / "Annotations").mkdir()
    (src / "ImageSets/Main").mkdir(parents=True)
    (src / "ImageSets/Main/train.txt").write_text("img000\nimg001\n")
    (src / "ImageSets/Main/val.txt").write_text("img002\n")
    for i, (name, w, h) in enumerate(imgs):
        (src / "Annotations" / f"img{i:03d}.xml").write_text(
            f"""<annotation><folder>VOC</folder><filename>{name}</filename>
<size><width>{w}</width><height>{h}</height><depth>3</depth></size>
<object><name>dog</name><pose>Left</pose><truncated>0</truncated><difficult>1</difficult>
<bndbox><xmin>{3.5 + i}</xmin><ymin>4.25</ymin><xmax>30.125</xmax><ymax>40</ymax></bndbox></object>
<object><name>cat</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>9.75</xmax><ymax>11</ymax></bndbox></object>
</annotation>"""
        )
    data = tmp_path / "db"
    cli("import", "voc", str(src), "--dataset", "v", "--data", str(data))
    assert count(data, "FindBoundingBox", {"constraints": {"difficult": ["==", 1]}}) == 3
    out = tmp_path / "out"
    cli("export", "voc", str(out), "--data", str(data), "--split-by", "split")
    assert (out / "ImageSets/Main/val.txt").read_text().split() == ["img002"]
    for i in range(3):
        a = ET.parse(src / "Annotations" / f"img{i:03d}.xml").getroot()
        b = ET.parse(out / "Annotations" / f"img{i:03d}.xml").getroot()
        assert (out / "JPEGImages" / b.findtext("filename")).is_file()

        def objs(root: ET.Element) -> list:
            return sorted(
                (o.findtext("name"), *(float(o.find("bndbox").findtext(t))
                                       for t in ("xmin", "ymin", "xmax", "ymax")))
                for o in root.findall("object")
            )  # fmt: skip

        for x, y in zip(objs(a), objs(b), strict=True):
            assert x[0] == y[0] and all(
                abs(p - q) <= 1e-6 for p, q in zip(x[1:], y[1:], strict=True)
            )


def ls_export(root: Path) -> Path:
    imgs = write_images(root / "media", 2)
    tasks = []
    for i, (name, w, h) in enumerate(imgs):
        box = {"id": f"r{i}", "type": "rectanglelabels", "from_name": "label", "to_name": "image",
               "original_width": w, "original_height": h,
               "value": {"x": 10.5, "y": 20.25, "width": 30.0, "height": 12.5 + i,
                         "rotation": 0, "rectanglelabels": ["Cat"]}}  # fmt: skip
        poly = {"id": f"p{i}", "type": "polygonlabels", "from_name": "polygon", "to_name": "image",
                "original_width": w, "original_height": h,
                "value": {"points": [[10, 10], [50.5, 12], [30, 60.25]], "polygonlabels": ["Dog"]}}  # fmt: skip
        pred = {**box, "id": f"m{i}", "score": 0.75}
        tasks.append({
            "id": 7 + i,
            "data": {"image": f"/data/upload/1/0badcafe-{name}", "site": "north"},
            "annotations": [{"id": 30 + i, "completed_by": 1, "result": [box, poly],
                             "created_at": "2025-01-02T03:04:05Z"}],
            "predictions": [{"model_version": "yolo-v8", "score": 0.7, "result": [pred]}],
        })  # fmt: skip
    path = root / "export.json"
    path.write_text(json.dumps(tasks))
    return path


def test_labelstudio_round_trip(tmp_path: Path) -> None:
    src = ls_export(tmp_path / "ls")
    data = tmp_path / "db"
    cli("import", "labelstudio", str(src), "--images", str(tmp_path / "ls/media"),
        "--dataset", "l", "--data", str(data))  # fmt: skip
    assert count(data, "FindEntity", {"with_class": "LS_annotation"}) == 2
    assert (
        count(data, "FindBoundingBox", {"constraints": {"model_version": ["==", "yolo-v8"]}}) == 2
    )
    out = tmp_path / "out" / "tasks.json"
    cli("export", "labelstudio", str(out), "--data", str(data))
    before, after = json.loads(src.read_text()), json.loads(out.read_text())
    assert (out.parent / "label_config.xml").is_file()
    for t0, t1 in zip(before, sorted(after, key=lambda t: t["data"]["ls_task_id"]), strict=True):
        assert t1["data"]["site"] == "north"
        assert (out.parent / t1["data"]["image"]).is_file()
        for key in ("annotations", "predictions"):
            r0 = {r["type"]: r["value"] for r in t0[key][0]["result"]}
            r1 = {r["type"]: r["value"] for r in t1[key][0]["result"]}
            assert r0.keys() == r1.keys()
            for kind in r0:
                for field in ("x", "y", "width", "height"):
                    if field in r0[kind]:
                        assert abs(r0[kind][field] - r1[kind][field]) < 1e-9
                for label in ("rectanglelabels", "polygonlabels"):
                    assert r0[kind].get(label) == r1[kind].get(label)
        assert t1["predictions"][0]["model_version"] == "yolo-v8"


@pytest.mark.parametrize(
    "fmt, make, expect",
    [
        ("coco", "bad_bbox", ["instances.json", "annotations[3].bbox"]),
        ("coco", "bad_json", ["instances.json", "line 3"]),
        ("coco", "missing_image", ["instances.json", "img002.jpg"]),
        ("yolo", "bad_line", ["train_001.txt", "line 2"]),
        ("voc", "bad_xml", ["img001.xml", "line"]),
        ("labelstudio", "no_image", ["export.json", "[1].data.image"]),
    ],
)
def test_malformed_source_imports_nothing_and_names_file_and_field(
    tmp_path: Path, fmt: str, make: str, expect: list[str]
) -> None:
    root = tmp_path / "src"
    extra: list[str] = []
    if fmt == "coco":
        src = coco_dataset(root)
        extra = ["--images", str(root / "images")]
        doc = json.loads(src.read_text())
        if make == "bad_bbox":
            doc["annotations"][3]["bbox"] = [1, 2, "wide", 4]
            src.write_text(json.dumps(doc))
        elif make == "bad_json":
            src.write_text('{\n "images": [],\n "annotations": [,]\n}')
        else:
            (root / "images" / "img002.jpg").unlink()
    elif fmt == "yolo":
        src = yolo_dataset(root)
        (root / "labels/train/train_001.txt").write_text("0 0.5 0.5 0.2 0.2\n7 0.5 0.5 0.1 0.1\n")
    elif fmt == "voc":
        src = root
        write_images(root / "JPEGImages", 2)
        (root / "Annotations").mkdir()
        (root / "Annotations/img000.xml").write_text(
            "<annotation><filename>img000.jpg</filename><object><name>a</name><bndbox>"
            "<xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></object></annotation>"
        )
        (root / "Annotations/img001.xml").write_text(
            "<annotation><filename>img001.jpg</annotation>"
        )
    else:
        src = ls_export(root)
        extra = ["--images", str(root / "media")]
        tasks = json.loads(src.read_text())
        tasks[1]["data"]["image"] = "/data/upload/1/nothere.jpg"
        src.write_text(json.dumps(tasks))
    data = tmp_path / "db"
    result = cli("import", fmt, str(src), *extra, "--data", str(data), ok=False)
    assert result.exit_code == 1
    assert "nothing imported" in result.output
    for part in expect:
        assert part in result.output, result.output
    assert not data.exists() or count(data, "FindImage") == 0


def test_export_since_split_by_and_links(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    first = coco_dataset(tmp_path / "a", n=2)
    data = tmp_path / "db"
    cli("import", "coco", str(first), "--images", str(tmp_path / "a/images"), "--dataset", "a",
        "--data", str(data))  # fmt: skip
    since = datetime.now(UTC).isoformat()
    second = coco_dataset(tmp_path / "b", n=3)
    cli("import", "coco", str(second), "--images", str(tmp_path / "b/images"), "--dataset", "b",
        "--data", str(data))  # fmt: skip

    out = tmp_path / "since"
    cli("export", "coco", str(out), "--data", str(data), "--since", since, "--split-by", "dataset",
        "--media", "link", "--link-base", "http://lensdb:55556")  # fmt: skip
    assert sorted(p.name for p in out.iterdir()) == ["b.json"]  # links: no image files
    doc = json.loads((out / "b.json").read_text())
    assert len(doc["images"]) == 3
    assert all(i["coco_url"].startswith("http://lensdb:55556/media/images/") for i in doc["images"])

    everything = tmp_path / "all"
    cli("export", "coco", str(everything), "--data", str(data), "--split-by", "dataset")
    assert sorted(p.name for p in everything.iterdir()) == ["a.json", "b.json", "images"]
    assert len(list((everything / "images" / "a").iterdir())) == 2
    result = cli("export", "coco", str(tmp_path / "x.json"), "--data", str(data),
                 "--split-by", "dataset", ok=False)  # fmt: skip
    assert result.exit_code == 1 and "OUT must be a folder" in result.output


def test_a_failed_batch_keeps_earlier_batches_and_a_rerun_continues(tmp_path: Path) -> None:
    src = coco_dataset(tmp_path / "src", n=4)
    images = tmp_path / "src/images"
    good = (images / "img002.jpg").read_bytes()
    # Its header reads (so the check before writing passes), but its pixels are cut short:
    # lensdb refuses the image when it is added, in the third batch.
    (images / "img002.jpg").write_bytes(good[:-40])
    data = tmp_path / "db"
    args = ["import", "coco", str(src), "--images", str(images), "--batch", "1",
            "--data", str(data)]  # fmt: skip
    failed = cli(*args, ok=False)
    assert failed.exit_code == 1
    assert "2 image(s) of earlier batches are stored" in failed.output
    assert count(data, "FindImage") == 2
    (images / "img002.jpg").write_bytes(good)
    result = cli(*args)
    assert "images added: 2, already there: 2" in result.output
    assert count(data, "FindImage") == 4


def test_coco_keypoints_export_as_a_yolo_pose_dataset_and_back(tmp_path: Path) -> None:
    src = coco_dataset(tmp_path / "src", n=2)
    data = tmp_path / "db"
    cli("import", "coco", str(src), "--images", str(tmp_path / "src/images"), "--dataset", "c",
        "--data", str(data))  # fmt: skip
    out = tmp_path / "pose"
    cli("export", "yolo", str(out), "--data", str(data))
    doc = yaml.safe_load((out / "data.yaml").read_text())
    assert doc["kpt_shape"] == [3, 3]
    rows = [line.split() for line in (out / "labels/img000.txt").read_text().splitlines()]
    person = next(r for r in rows if r[0] == "2" and len(r) == 14)  # class person, box + 3 points
    w, h = 64, 48
    assert abs(float(person[5]) * w - 10.5) < 1e-6 and abs(float(person[6]) * h - 25.25) < 1e-6
    assert person[8:11] == ["0.0", "0.0", "0.0"]  # the unlabelled left eye
    data2 = tmp_path / "db2"
    cli("import", "yolo", str(out), "--data", str(data2))
    assert count(data2, "FindEntity", {"with_class": "LS_keypoint"}) == 4
