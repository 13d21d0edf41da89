"""The same import and export on the scale-out backend: --data postgresql://... --blobs s3://..."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from helpers import assert_same_boxes, boxes_by_file, coco_dataset

from lensdb import Database
from lensdb.cli import main


def test_coco_round_trip_on_postgres_and_s3(tmp_path: Path, postgres_cluster, moto_server) -> None:
    url = postgres_cluster.new_database()
    blobs = f"s3://{moto_server.new_bucket()}/lensdb"
    src = coco_dataset(tmp_path / "src", n=3)
    where = ["--data", url, "--blobs", blobs]
    args = ["import", "coco", str(src), "--images", str(tmp_path / "src/images"), "--dataset", "pg"]
    for expected in ("images added: 3", "images added: 0, already there: 3"):
        result = CliRunner().invoke(main, [*args, *where], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert expected in result.output
    with Database(url, blobs=blobs) as db:
        r, _ = db.query([{"FindBoundingBox": {"blobs": False, "results": {"count": True}}}])
    assert r[0]["FindBoundingBox"]["count"] == 3 * 3 + 2
    out = tmp_path / "out.json"
    result = CliRunner().invoke(main, ["export", "coco", str(out), *where], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert_same_boxes(
        boxes_by_file(json.loads(src.read_text())), boxes_by_file(json.loads(out.read_text()))
    )
    assert len(list((tmp_path / "images").iterdir())) == 3
