"""The SDK's ParallelLoader and the `adb` CLI ingesting generated datasets through the server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from aperturedb.BBoxDataCSV import BBoxDataCSV
from aperturedb.BlobDataCSV import BlobDataCSV
from aperturedb.ConnectionDataCSV import ConnectionDataCSV
from aperturedb.EntityDataCSV import EntityDataCSV
from aperturedb.ImageDataCSV import ImageDataCSV
from aperturedb.ParallelLoader import ParallelLoader
from aperturedb.PolygonDataCSV import PolygonDataCSV
from aperturedb.Utils import Utils

from .datasets import make_dataset, small_jpeg

N_IMAGES = 2000
THREADS = 8
BATCH = 20


def _ingest(client, data, batchsize: int = BATCH) -> ParallelLoader:
    loader = ParallelLoader(client)
    loader.ingest(data, batchsize=batchsize, numthreads=THREADS, stats=False)
    return loader


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory, lensdb_module_server_factory):
    """A server holding the whole generated dataset, plus the first run's loader results."""
    ds = make_dataset(tmp_path_factory.mktemp("loaders") / "dataset", n_images=N_IMAGES)
    server = lensdb_module_server_factory()
    client = server.connector()
    runs = {
        "images": (_ingest(client, ImageDataCSV(str(ds.images_csv))), ds.n_images),
        "people": (_ingest(client, EntityDataCSV(str(ds.entities_csv))), ds.n_people),
        "boxes": (_ingest(client, BBoxDataCSV(str(ds.boxes_csv))), ds.n_boxes),
        "polygons": (_ingest(client, PolygonDataCSV(str(ds.polygons_csv))), ds.n_polygons),
        "connections": (
            _ingest(client, ConnectionDataCSV(str(ds.connections_csv))),
            ds.n_connections,
        ),
        "blobs": (_ingest(client, BlobDataCSV(str(ds.blobs_csv))), ds.n_blobs),
    }
    return server, client, ds, runs


def test_every_loader_succeeds(loaded) -> None:
    _, _, _, runs = loaded
    for name, (loader, expected) in runs.items():
        assert loader.error_counter == 0, name
        assert loader.get_succeeded_queries() == expected, name
        assert loader.get_objects_existed() == 0, name


def test_counts(loaded) -> None:
    _, client, ds, _ = loaded
    u = Utils(client)
    assert u.count_images() == ds.n_images
    assert u.count_bboxes() == ds.n_boxes
    assert u.count_entities("Person") == ds.n_people
    assert u.count_connections("depicts") == ds.n_connections
    r, _ = client.query(
        [
            {"FindPolygon": {"results": {"count": True}}},
            {"FindBlob": {"results": {"count": True}}},
        ]
    )
    assert r[0]["FindPolygon"]["count"] == ds.n_polygons
    assert r[1]["FindBlob"]["count"] == ds.n_blobs
    schema = u.get_schema()
    assert (
        schema["entities"]["classes"]["_Image"]["properties"]["id"][1] is True
    )  # the loader's index


def test_find_image_with_constraints_and_blobs(loaded) -> None:
    _, client, ds, _ = loaded
    r, blobs = client.query(
        [
            {
                "FindImage": {
                    "constraints": {"label": ["==", "cat"], "id": ["<", 30]},
                    "blobs": True,
                    "results": {"list": ["id", "label"], "sort": "id"},
                }
            }
        ]
    )
    found = r[0]["FindImage"]
    ids = [e["id"] for e in found["entities"]]
    assert ids == list(range(0, 30, 3)) and found["returned"] == 10
    assert all(e["label"] == "cat" for e in found["entities"])
    assert blobs == [small_jpeg(i) for i in ids]


def test_find_through_connections_and_regions(loaded) -> None:
    _, client, ds, _ = loaded
    r, _ = client.query(
        [
            {"FindEntity": {"_ref": 1, "with_class": "Person", "constraints": {"pid": ["==", 5]}}},
            {
                "FindImage": {
                    "_ref": 2,
                    "is_connected_to": {"ref": 1, "connection_class": "depicts"},
                    "results": {"list": ["id"], "sort": "id"},
                }
            },
            {"FindBoundingBox": {"image_ref": 2, "results": {"count": True}}},
        ]
    )
    ids = [e["id"] for e in r[1]["FindImage"]["entities"]]
    assert ids == list(range(5, ds.n_images, ds.n_people))
    assert r[2]["FindBoundingBox"]["count"] == len(ids) * ds.boxes_per_image


def test_rerun_reports_objects_existed(loaded) -> None:
    _, client, ds, _ = loaded
    again = _ingest(client, ImageDataCSV(str(ds.images_csv)))
    assert again.error_counter == 0
    assert again.get_objects_existed() == ds.n_images
    boxes = _ingest(client, BBoxDataCSV(str(ds.boxes_csv)))
    assert boxes.error_counter == 0 and boxes.get_objects_existed() == ds.n_boxes
    assert Utils(client).count_images() == ds.n_images


def _adb(home: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APERTUREDB_", "XDG_CONFIG"))}
    env.update(HOME=str(home), COLUMNS="200")
    adb = Path(sys.executable).parent / "adb"
    return subprocess.run(
        [str(adb), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300
    )


def _write_relative_csvs(folder: Path, n: int) -> tuple[Path, Path]:
    (folder / "imgs").mkdir(parents=True)
    rows = ["filename,id,kind,constraint_id"]
    for i in range(n):
        (folder / "imgs" / f"{i}.jpg").write_bytes(small_jpeg(10_000 + i))
        rows.append(f"imgs/{i}.jpg,{10_000 + i},cli,{10_000 + i}")
    images = folder / "images.csv"
    images.write_text("\n".join(rows) + "\n")
    people = folder / "people.csv"
    people.write_text(
        "EntityClass,name,cid,constraint_cid\n"
        + "".join(f"CliPerson,p{i},{i},{i}\n" for i in range(7))
    )
    return images, people


@pytest.mark.parametrize(
    "ssl_args", [["--no-use-ssl"], ["--use-ssl", "--ca-cert", "CA"]], ids=["plain", "tls"]
)
def test_adb_cli_config_and_ingest(
    lensdb_server_factory, tmp_path: Path, ssl_args: list[str]
) -> None:
    server = lensdb_server_factory()
    home = tmp_path / "home"
    home.mkdir()
    ssl_args = [server.ca_cert if a == "CA" else a for a in ssl_args]
    made = _adb(
        home,
        "config",
        "create",
        "lens",
        "--host",
        "localhost",
        "--port",
        str(server.port),
        "--username",
        "admin",
        "--password",
        server.admin_password,
        *ssl_args,
        "--no-interactive",
        "--active",
    )
    assert made.returncode == 0, made.stdout + made.stderr
    assert (home / ".config" / "aperturedb" / "adb.json").exists()

    status = _adb(home, "utils", "execute", "status")
    assert status.returncode == 0 and '"status": 0' in status.stdout, status.stdout + status.stderr

    images, people = _write_relative_csvs(tmp_path / "csv", 30)
    for csv_file, kind in ((images, "IMAGE"), (people, "ENTITY")):
        done = _adb(
            home,
            "ingest",
            "from-csv",
            str(csv_file),
            "--ingest-type",
            kind,
            "--batchsize",
            "5",
            "--num-workers",
            "2",
            "--no-stats",
        )
        assert done.returncode == 0, done.stdout + done.stderr

    u = Utils(server.connector())
    assert u.count_images({"kind": ["==", "cli"]}) == 30
    assert u.count_entities("CliPerson") == 7

    summary = _adb(home, "utils", "execute", "summary")
    assert summary.returncode == 0 and "CliPerson" in summary.stdout, (
        summary.stdout + summary.stderr
    )
    token = _adb(home, "utils", "tokens", "generate")
    assert token.returncode == 0 and token.stdout.strip().startswith("adbp_")
