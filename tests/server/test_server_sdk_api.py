"""More of the official SDK against `lensdb serve`: its object API (Images, Entities, DataModels),
ParallelQuery exports, the ParallelQuerySet loaders (update, sparse add, force-newest), Utils on
descriptor sets, and the PyTorch dataset."""

from __future__ import annotations

import csv
import hashlib
import io
from pathlib import Path

import pytest
from aperturedb.Constraints import Constraints
from aperturedb.Entities import Entities
from aperturedb.Images import Images
from aperturedb.ParallelQuery import ParallelQuery
from aperturedb.ParallelQuerySet import ParallelQuerySet
from aperturedb.Query import ObjectType, Query
from aperturedb.Subscriptable import Subscriptable
from aperturedb.Utils import Utils
from PIL import Image

from .datasets import small_jpeg


@pytest.fixture(scope="module")
def client(lensdb_module_server_factory):
    """A server holding 6 images (a box and a polygon each) and a person who took image 0."""
    server = lensdb_module_server_factory()
    client = server.connector()
    q: list[dict] = [{"AddEntity": {"_ref": 100, "class": "Person", "properties": {"name": "ann"}}}]
    for i in range(6):
        q += [
            {
                "AddImage": {
                    "_ref": i + 1,
                    "properties": {"name": f"im{i}", "n": i, "split": "train" if i % 2 else "val"},
                }
            },
            {
                "AddBoundingBox": {
                    "image_ref": i + 1,
                    "label": "cat",
                    "rectangle": {"x": 2, "y": 3, "width": 10, "height": 8},
                }
            },
            {
                "AddPolygon": {
                    "image_ref": i + 1,
                    "label": "dog",
                    "polygons": [[[1, 1], [20, 1], [9, 14]]],
                }
            },
        ]
    q.append({"AddConnection": {"class": "took", "src": 100, "dst": 1}})
    client.query(q, [small_jpeg(i) for i in range(6)])
    assert client.last_query_ok(), client.get_last_response_str()
    return client


def write_csv(path: Path, rows: list[list]) -> str:
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return str(path)


def run_query_set(client, data) -> int:
    pq = ParallelQuerySet(client)
    pq.query(data, batchsize=1, numthreads=2, stats=False)
    return pq.error_counter


def test_images_object_api(client) -> None:
    images = Images(client)
    images.search(constraints=Constraints().equal("split", "train"), limit=10)
    assert images.total_results() == 3
    names = images.get_properties(["name"])
    assert sorted(p["name"] for p in names.values()) == ["im1", "im3", "im5"]
    assert all(uid.startswith("2.0.") for uid in names)  # keyed by the images' _uniqueid
    pixels = images.get_np_image_by_index(0)
    width, height = Image.open(io.BytesIO(images.get_image_by_index(0))).size
    assert pixels.shape == (height, width, 3)
    boxes = images.get_bboxes_by_index(0)
    assert boxes["tags"] == ["cat"]
    assert boxes["bboxes"][0].tolist() == [[2, 3], [12, 3], [12, 11], [2, 11]]
    images.retrieve_polygons(0)
    [polys] = images.images_polygons.values()
    assert polys["tags"] == ["dog"] and len(polys["polygons"]) == 1

    by_name = Images(client)
    by_name.search_by_property("name", ["im0", "im2"])
    assert by_name.total_results() == 2
    [people] = by_name.get_connected_entities("Person", Constraints().equal("name", "ann"))[:1]
    assert [p["name"] for p in people] == ["ann"]


def test_entities_retrieve(client) -> None:
    spec = Query.spec(
        with_class=ObjectType.IMAGE,
        constraints=Constraints().equal("split", "val"),
        limit=5,
        blobs=False,
    )
    found = Entities.retrieve(client, spec=spec)
    assert sorted(e["name"] for e in found) == ["im0", "im2", "im4"]
    people = Entities.retrieve(client, spec=Query.spec(with_class="Person", limit=5))
    assert [p["name"] for p in people] == ["ann"]


def test_data_model_ingest(client, tmp_path: Path) -> None:
    from aperturedb.CommonLibrary import execute_query
    from aperturedb.DataModels import ImageDataModel
    from aperturedb.Query import generate_add_query

    path = tmp_path / "model.jpg"
    Image.new("RGB", (40, 30), (9, 8, 7)).save(path)

    class Photo(ImageDataModel):
        caption: str = "from a data model"

    query, blobs, _ = generate_add_query(Photo(url=str(path)))
    status, response, _ = execute_query(client, query, blobs)
    assert status == 0, response
    r, _ = client.query(
        [
            {
                "FindImage": {
                    "constraints": {"caption": ["==", "from a data model"]},
                    "blobs": False,
                    "results": {"list": ["width", "height"]},
                }
            }
        ]
    )
    assert r[0]["FindImage"]["entities"] == [{"width": 40, "height": 30}]


def test_parallel_query_export_with_a_response_handler(client) -> None:
    got = []

    class Export(Subscriptable):
        def __len__(self) -> int:
            return 6

        def getitem(self, i):
            return [
                {
                    "FindImage": {
                        "constraints": {"n": ["==", i]},
                        "blobs": True,
                        "results": {"list": ["name"]},
                    }
                }
            ], []

        def response_handler(self, query, blobs, response, rblobs) -> None:
            got.append((response[0]["FindImage"]["entities"][0]["name"], rblobs[0][:2]))

    pq = ParallelQuery(client)
    pq.query(Export(), batchsize=2, numthreads=2, stats=False)
    assert pq.error_counter == 0
    assert sorted(got) == [(f"im{i}", b"\xff\xd8") for i in range(6)]


def test_update_loader_updates_only_newer_versions(client, tmp_path: Path) -> None:
    from aperturedb.EntityUpdateDataCSV import SingleEntityUpdateDataCSV

    header = ["EntityClass", "id", "version", "color", "constraint_id", "updateif_<version"]
    first = write_csv(
        tmp_path / "v1.csv", [header, ["Car", 1, 1, "red", 1, 1], ["Car", 2, 1, "blue", 2, 1]]
    )
    assert run_query_set(client, SingleEntityUpdateDataCSV("Car", first)) == 0
    second = write_csv(
        tmp_path / "v2.csv", [header, ["Car", 1, 2, "green", 1, 2], ["Car", 2, 1, "black", 2, 1]]
    )
    assert run_query_set(client, SingleEntityUpdateDataCSV("Car", second)) == 0
    r, _ = client.query(
        [
            {
                "FindEntity": {
                    "with_class": "Car",
                    "results": {"list": ["id", "color", "version"], "sort": "id"},
                }
            }
        ]
    )
    assert r[0]["FindEntity"]["entities"] == [
        {"id": 1, "color": "green", "version": 2},
        {"id": 2, "color": "blue", "version": 1},
    ]


def test_sparse_add_and_force_newest_image_loaders(client, tmp_path: Path) -> None:
    from aperturedb.ImageDataCSV import ImageForceNewestDataCSV, ImageSparseAddDataCSV

    def jpeg(name: str, color: tuple) -> str:
        Image.new("RGB", (32, 24), color).save(tmp_path / name)
        return str(tmp_path / name)

    sparse = write_csv(
        tmp_path / "sparse.csv",
        [
            ["filename", "sid", "constraint_sid"],
            [jpeg("s1.jpg", (1, 2, 3)), 21, 21],
            [jpeg("s2.jpg", (3, 2, 1)), 22, 22],
        ],
    )
    assert run_query_set(client, ImageSparseAddDataCSV(sparse)) == 0
    assert run_query_set(client, ImageSparseAddDataCSV(sparse)) == 0  # found: nothing sent again
    r, _ = client.query(
        [
            {
                "FindImage": {
                    "constraints": {"sid": [">", 0]},
                    "blobs": False,
                    "results": {"count": True},
                }
            }
        ]
    )
    assert r[0]["FindImage"]["count"] == 2

    # Force-newest: an image whose version is newer gets its properties updated; otherwise it is
    # deleted and added again with the blob of the CSV (the SDK's three conditional queries).
    header = ["filename", "nid", "ver", "constraint_nid", "updateif_<ver", "gen_blobsha1_sha"]

    def force_newest(name: str, color: tuple, ver: int) -> tuple[list, bytes]:
        rows = write_csv(
            tmp_path / f"{name}.csv", [header, [jpeg(f"{name}.jpg", color), 31, ver, 31, ver, ""]]
        )
        assert run_query_set(client, ImageForceNewestDataCSV(rows)) == 0
        r, blobs = client.query(
            [
                {
                    "FindImage": {
                        "constraints": {"nid": ["==", 31]},
                        "blobs": True,
                        "results": {"list": ["ver", "sha"]},
                    }
                }
            ]
        )
        return r[0]["FindImage"]["entities"], blobs[0]

    found, blob = force_newest("n1", (10, 10, 10), 1)
    assert blob == (tmp_path / "n1.jpg").read_bytes()
    found, blob = force_newest("n2", (200, 10, 10), 2)  # newer: properties updated in place
    assert [e["ver"] for e in found] == [2] and blob == (tmp_path / "n1.jpg").read_bytes()
    found, blob = force_newest("n3", (10, 200, 10), 2)  # not newer: replaced, blob and all
    assert blob == (tmp_path / "n3.jpg").read_bytes()
    assert [(e["ver"], e["sha"]) for e in found] == [(2, hashlib.sha1(blob).hexdigest())]


def test_utils_on_descriptor_sets(client) -> None:
    u = Utils(client)
    assert u.get_descriptorset_list() == []
    assert u.count_descriptorsets() == 0


def test_pytorch_dataset(client) -> None:
    torch = pytest.importorskip("torch", reason="the 'ml' extra installs torch")
    from aperturedb.PyTorchDataset import ApertureDBDataset

    query = [
        {
            "FindImage": {
                "constraints": {"split": ["==", "train"]},
                "operations": [{"type": "resize", "width": 16, "height": 16}],
            }
        }
    ]
    dataset = ApertureDBDataset(client, query, label_prop="name", batch_size=2)
    assert len(dataset) == 3
    seen = []
    for pixels, labels in torch.utils.data.DataLoader(dataset, batch_size=2):
        assert tuple(pixels.shape[1:]) == (16, 16, 3)
        seen += list(labels)
    assert sorted(seen) == ["im1", "im3", "im5"]


def test_loaders_and_images_over_rest(lensdb_module_server_factory, tmp_path: Path) -> None:
    """The same SDK loaders through ConnectorRest (POST /api/ with multipart blobs)."""
    from aperturedb.BBoxDataCSV import BBoxDataCSV
    from aperturedb.ImageDataCSV import ImageDataCSV
    from aperturedb.ParallelLoader import ParallelLoader

    from .datasets import make_dataset

    ds = make_dataset(tmp_path / "rest", n_images=120, n_people=5, n_blobs=5)
    rest = lensdb_module_server_factory(name="rest").rest_connector()
    for data, expected in (
        (ImageDataCSV(str(ds.images_csv)), ds.n_images),
        (BBoxDataCSV(str(ds.boxes_csv)), ds.n_boxes),
    ):
        loader = ParallelLoader(rest)
        loader.ingest(data, batchsize=20, numthreads=4, stats=False)
        assert loader.error_counter == 0 and loader.get_succeeded_queries() == expected
    u = Utils(rest)
    assert (u.count_images(), u.count_bboxes()) == (ds.n_images, ds.n_boxes)
    images = Images(rest)
    images.search(limit=3)
    assert images.total_results() == 3 and images.get_np_image_by_index(0).ndim == 3
    assert len(images.get_bboxes_by_index(0)["bboxes"]) == ds.boxes_per_image
