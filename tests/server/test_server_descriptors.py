"""The SDK's descriptor API against `lensdb serve`, over TCP and REST: Descriptors.find_similar
(and its MMR variant), Images.get_similar_images, ParallelLoader with DescriptorSetDataCSV and
DescriptorDataCSV, and the Utils descriptor helpers. Answers are checked against numpy."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from aperturedb.Constraints import Constraints
from aperturedb.DescriptorDataCSV import DescriptorDataCSV
from aperturedb.Descriptors import Descriptors
from aperturedb.DescriptorSetDataCSV import DescriptorSetDataCSV
from aperturedb.Images import Images
from aperturedb.ParallelLoader import ParallelLoader
from aperturedb.Utils import Utils

from .datasets import small_jpeg

DIM = 16
N = 300


def write_csv(path: Path, rows: list[list]) -> str:
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return str(path)


def brute_top(metric: str, data: np.ndarray, q: np.ndarray, k: int) -> list[int]:
    if metric == "L2":
        d = np.sum((data - q) ** 2, axis=1, dtype=np.float32)
        return [int(i) for i in np.argsort(d, kind="stable")[:k]]
    s = data @ q
    if metric == "CS":
        s = s / (np.linalg.norm(data, axis=1) * np.linalg.norm(q))
    return [int(i) for i in np.argsort(-s, kind="stable")[:k]]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory, lensdb_module_server_factory):
    """Three sets (L2 exact, CS HNSW, IP with two engines) loaded by the SDK's ParallelLoader."""
    folder = tmp_path_factory.mktemp("descriptors")
    server = lensdb_module_server_factory()
    client = server.connector()
    sets_csv = write_csv(
        folder / "sets.csv",
        [
            ["name", "dimensions", "engine", "metric", "owner"],
            ["l2set", DIM, "FaissFlat", "L2", "ann"],
            ["csset", DIM, "HNSW", "['CS', 'L2']", "bob"],
            ["ipset", DIM, "['FaissIVFFlat', 'FaissFlat']", "IP", "cid"],
        ],
    )
    loader = ParallelLoader(client)
    loader.ingest(DescriptorSetDataCSV(sets_csv), batchsize=2, numthreads=2, stats=False)
    assert loader.error_counter == 0
    data = np.random.default_rng(7).normal(size=(N, DIM)).astype(np.float64)
    np.save(folder / "vectors.npy", data)
    rows = [["filename", "index", "set", "label", "id", "constraint_id"]]
    for name in ("l2set", "csset", "ipset"):
        rows += [
            [str(folder / "vectors.npy"), i, name, "dog" if i % 3 else "cat", i, i]
            for i in range(N)
        ]
    desc_csv = write_csv(folder / "descriptors.csv", rows)
    loader = ParallelLoader(client)
    loader.ingest(DescriptorDataCSV(desc_csv), batchsize=50, numthreads=4, stats=False)
    assert loader.error_counter == 0
    assert loader.get_succeeded_queries() == 3 * N
    return server, data.astype(np.float32), desc_csv


@pytest.fixture(params=["tcp", "rest"])
def client(request, loaded):
    server = loaded[0]
    return server.connector() if request.param == "tcp" else server.rest_connector()


def test_loader_rerun_finds_every_descriptor_existing(loaded):
    server, _, desc_csv = loaded
    loader = ParallelLoader(server.connector())
    loader.ingest(DescriptorDataCSV(desc_csv), batchsize=100, numthreads=2, stats=False)
    assert loader.error_counter == 0
    assert loader.get_objects_existed() == 3 * N


def test_utils_count_and_list(client):
    u = Utils(client)
    assert sorted(u.get_descriptorset_list()) == ["csset", "ipset", "l2set"]
    assert u.count_descriptorsets() == 3
    assert u.count_entities("_Descriptor") == 3 * N
    assert u.count_descriptors_in_set("csset") == N


@pytest.mark.parametrize("name, metric", [("l2set", "L2"), ("csset", "CS"), ("ipset", "IP")])
def test_find_similar_matches_brute_force(client, loaded, name, metric):
    _, data, _ = loaded
    q = data[5] + 0.05
    d = Descriptors(client)
    d.find_similar(name, q, k_neighbors=8, distances=True, blobs=True)
    got = list(d)
    assert [e["id"] for e in got] == brute_top(metric, data, q, 8)
    assert all(e["label"] in ("cat", "dog") for e in got)  # the CSV label lands in properties
    for e in got:
        np.testing.assert_array_equal(e["vector"], data[e["id"]])
    dist = [e["_distance"] for e in got]
    assert dist == sorted(dist, reverse=metric != "L2")


def test_find_similar_with_constraints(client, loaded):
    _, data, _ = loaded
    q = data[9]
    d = Descriptors(client)
    d.find_similar(
        "l2set",
        q,
        k_neighbors=20,
        constraints=Constraints().equal("label", "cat"),
        results={"list": ["id", "label"]},
    )
    top20 = brute_top("L2", data, q, 20)
    assert [e["id"] for e in d] == [i for i in top20 if i % 3 == 0]


def test_find_similar_mmr(client, loaded):
    _, data, _ = loaded
    q = data[0]
    d = Descriptors(client)
    d.find_similar_mmr("csset", q, k_neighbors=5, fetch_k=20, lambda_mult=0.5)
    ids = [e["id"] for e in d]
    assert len(ids) == 5 and ids[0] == 0  # the best match first, then diverse ones
    assert set(ids) <= set(brute_top("CS", data, q, 20))


def test_get_similar_images(client, loaded):
    server, data, _ = loaded
    admin = server.connector()
    r, _ = admin.query(
        [
            {
                "AddDescriptorSet": {
                    "name": "imgset",
                    "dimensions": DIM,
                    "metric": ["CS"],
                    "engine": ["HNSW"],
                }
            }
        ]
    )
    q = []
    for i in range(6):
        q += [
            {"AddImage": {"_ref": i + 1, "properties": {"img_n": i}}},
            {
                "AddDescriptor": {
                    "set": "imgset",
                    "properties": {"image_n": i},
                    "if_not_found": ["$image_n", "==", i],
                    "connect": {"ref": i + 1},
                }
            },
        ]
    admin.query(q, [b for i in range(6) for b in (small_jpeg(i), data[i].tobytes())])
    assert admin.last_query_ok(), admin.get_last_response_str()
    images = Images(client)
    images.search(constraints=Constraints().equal("img_n", 2), limit=1)
    similar = images.get_similar_images("imgset", 3)
    want = brute_top("CS", data[:6], data[2], 4)
    r, _ = client.query(
        [
            {
                "FindImage": {
                    "constraints": {"_uniqueid": ["in", similar.images_ids]},
                    "results": {"list": ["_uniqueid", "img_n"]},
                }
            }
        ]
    )
    by_uid = {e["_uniqueid"]: e["img_n"] for e in r[0]["FindImage"]["entities"]}
    assert [by_uid[u] for u in similar.images_ids] == want


def test_remove_descriptorset_and_all(lensdb_server_factory, tmp_path):
    server = lensdb_server_factory()
    client = server.connector()
    vec = np.ones(4, np.float32).tobytes()
    client.query(
        [
            {"AddDescriptorSet": {"name": "a", "dimensions": 4}},
            {"AddDescriptorSet": {"name": "b", "dimensions": 4}},
            {"AddDescriptor": {"set": "a"}},
            {"AddDescriptor": {"set": "b"}},
        ],
        [vec, vec],
    )
    assert client.last_query_ok()
    u = Utils(client)
    assert u.remove_descriptorset("a")
    assert u.get_descriptorset_list() == ["b"]
    assert u.count_entities("_Descriptor") == 1
    assert u.remove_all_descriptorsets() is not False  # it returns None when it succeeds
    assert u.count_descriptorsets() == 0 and u.count_entities("_Descriptor") == 0
    assert u.remove_all_objects()
