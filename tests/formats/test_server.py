"""Import and export through a running `lensdb serve` (--lensdb HOST:PORT over TLS), as a user would."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import assert_same_boxes, boxes_by_file, coco_dataset, run_cli


def test_import_and_export_through_a_running_server(tmp_path: Path, lensdb_server_factory) -> None:
    server = lensdb_server_factory()
    src = coco_dataset(tmp_path / "src", n=3)
    conn = ["--lensdb", f"127.0.0.1:{server.port}", "--lensdb-ca-cert", server.ca_cert]
    env = {"LENSDB_PASSWORD": server.admin_password}
    args = ("import", "coco", str(src), "--images", str(tmp_path / "src/images"), "--dataset", "s")
    r = run_cli(*args, *conn, env=env)
    assert "images added: 3" in r.stderr
    again = run_cli(*args, *conn, env=env)
    assert "images added: 0, already there: 3" in again.stderr

    # The server's own clients see the data: the aperturedb SDK counts what was imported.
    db = server.connector()
    response, _ = db.query([{"FindImage": {"constraints": {"dataset": ["==", "s"]},
                                           "results": {"count": True}}}])  # fmt: skip
    assert response[0]["FindImage"]["count"] == 3

    out = tmp_path / "out.json"
    run_cli("export", "coco", str(out), *conn, env=env)
    assert_same_boxes(
        boxes_by_file(json.loads(src.read_text())), boxes_by_file(json.loads(out.read_text()))
    )
    assert len(list((tmp_path / "images").iterdir())) == 3

    # The same through the HTTP port (/api/).
    http = ["--lensdb", f"http://127.0.0.1:{server.http_port}"]
    r = run_cli("import", "coco", str(src), "--images", str(tmp_path / "src/images"),
                "--dataset", "h", *http, env=env)  # fmt: skip
    assert "images added: 3" in r.stderr
    out2 = tmp_path / "http" / "out.json"
    run_cli(
        "export", "coco", str(out2), "--constraints", '{"dataset": ["==", "h"]}', *http, env=env
    )
    assert len(json.loads(out2.read_text())["images"]) == 3

    wrong = run_cli(*args, *conn, env={"LENSDB_PASSWORD": "wrong"}, check=False)
    assert wrong.returncode == 1 and "Traceback" not in wrong.stderr
