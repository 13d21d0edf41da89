"""Descriptor sets and descriptors in-process: answers compared with a numpy brute force."""

from __future__ import annotations

import numpy as np
import pytest

from lensdb import Database
from lensdb.index import APPROXIMATE_ENGINES, ENGINES, EXACT_BELOW, EXACT_ENGINES

from .helpers import body, fail, jpeg, ok, one, open_db


def vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)


def brute(metric: str, data: np.ndarray, q: np.ndarray) -> np.ndarray:
    if metric == "L2":
        return np.sum((data - q) ** 2, axis=1, dtype=np.float32)
    dots = data.astype(np.float64) @ q.astype(np.float64)
    if metric == "CS":
        dots = dots / (np.linalg.norm(data, axis=1) * np.linalg.norm(q))
    return dots.astype(np.float32)


def brute_top(
    metric: str, data: np.ndarray, q: np.ndarray, k: int, keep: np.ndarray | None = None
) -> list[int]:
    d = brute(metric, data, q)
    order = np.argsort(d if metric == "L2" else -d, kind="stable")
    if keep is not None:
        order = [i for i in order if keep[i]]
    return [int(i) for i in order[:k]]


def add_set(
    db: Database, name: str, data: np.ndarray, metric="L2", engine="Flat", batch: int = 500
) -> None:
    assert (
        one(
            db,
            {
                "AddDescriptorSet": {
                    "name": name,
                    "dimensions": data.shape[1],
                    "metric": metric,
                    "engine": engine,
                }
            },
        )["status"]
        == 0
    )
    for start in range(0, len(data), batch):
        chunk = data[start : start + batch]
        ok(
            db,
            [
                {
                    "AddDescriptor": {
                        "set": name,
                        "label": f"l{(start + i) % 3}",
                        "properties": {"n": start + i, "even": (start + i) % 2 == 0},
                    }
                }
                for i in range(len(chunk))
            ],
            [v.tobytes() for v in chunk],
        )


def knn(db: Database, name: str, q: np.ndarray, k: int, **extra) -> list[dict]:
    cmd = {"set": name, "k_neighbors": k, "distances": True, "results": {"list": ["n"]}, **extra}
    return one(db, {"FindDescriptor": cmd}, [q.tobytes()])["entities"]


# --- sets ----------------------------------------------------------------------------------------


def test_sets_report_their_metrics_engines_dimensions_and_counts(db):
    r, _ = ok(
        db,
        [
            {
                "AddDescriptorSet": {
                    "name": "ViT-B/16",
                    "dimensions": 3,
                    "metric": ["CS", "L2"],
                    "engine": ["Flat", "HNSW"],
                    "properties": {"year": 2020},
                }
            },
            {"AddDescriptor": {"set": "ViT-B/16"}},
            {"AddDescriptor": {"set": "ViT-B/16"}},
        ],
        [np.ones(3, np.float32).tobytes()] * 2,
    )
    got = one(
        db,
        {
            "FindDescriptorSet": {
                "with_name": "ViT-B/16",
                "metrics": True,
                "engines": True,
                "dimensions": True,
                "counts": True,
                "results": {"all_properties": True},
            }
        },
    )
    ent = got["entities"][0]
    assert got["returned"] == 1
    assert ent["_name"] == "ViT-B/16" and ent["year"] == 2020
    assert (ent["_metrics"], ent["_engines"], ent["_dimensions"], ent["_count"]) == (
        ["CS", "L2"],
        ["Flat", "HNSW"],
        3,
        2,
    )
    # Only what was asked: no flags, no system values.
    assert one(db, {"FindDescriptorSet": {"results": {"list": ["year"]}}})["entities"] == [
        {"year": 2020}
    ]
    assert one(db, {"FindDescriptorSet": {"results": {"count": True}}})["count"] == 1


def test_an_existing_name_answers_status_2_and_binds_the_set(db):
    one(db, {"AddDescriptorSet": {"name": "s", "dimensions": 2}})
    r, _ = ok(
        db,
        [
            {"AddDescriptorSet": {"_ref": 1, "name": "s", "dimensions": 8}},
            {"FindDescriptorSet": {"is_connected_to": {"ref": 1}, "results": {"count": True}}},
            {"FindDescriptorSet": {"with_name": "s", "dimensions": True}},
        ],
    )
    assert body(r, 0) == {"status": 2, "info": "Object Exists!"}
    assert body(r, 2)["entities"] == [{"_dimensions": 2}]  # the first one stays as it was


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_every_engine_name_is_accepted_and_searches(db, engine):
    data = vectors(50, 8)
    add_set(db, "s", data, metric="L2", engine=engine)
    got = knn(db, "s", data[7], 5)
    assert [e["n"] for e in got] == brute_top("L2", data, data[7], 5)


def test_defaults_and_lists(db):
    one(db, {"AddDescriptorSet": {"name": "plain", "dimensions": 2}})
    one(
        db,
        {
            "AddDescriptorSet": {
                "name": "many",
                "dimensions": 2,
                "metric": ["L2", "CS", "IP"],
                "engine": ["FaissIVFFlat", "FaissFlat"],
            }
        },
    )
    got = {
        e["_name"]: e
        for e in one(
            db,
            {
                "FindDescriptorSet": {
                    "metrics": True,
                    "engines": True,
                    "results": {"list": ["_name"]},
                }
            },
        )["entities"]
    }
    assert got["plain"]["_metrics"] == ["L2"] and got["plain"]["_engines"] == ["HNSW"]
    assert got["many"]["_metrics"] == ["L2", "CS", "IP"]
    assert got["many"]["_engines"] == ["FaissIVFFlat", "FaissFlat"]


def test_update_descriptor_set(db):
    one(db, {"AddDescriptorSet": {"name": "s", "dimensions": 2, "properties": {"v": 1}}})
    assert (
        one(db, {"UpdateDescriptorSet": {"with_name": "s", "properties": {"v": 2}}})["count"] == 1
    )
    assert one(db, {"FindDescriptorSet": {"results": {"list": ["v"]}}})["entities"] == [{"v": 2}]
    fail(db, [{"UpdateDescriptorSet": {"with_name": "s", "properties": {"_dimensions": 9}}}])


def test_delete_set_takes_its_descriptors_and_connections(db):
    data = vectors(10, 4)
    add_set(db, "gone", data)
    add_set(db, "kept", data[:3])
    r, _ = ok(
        db,
        [
            {"AddImage": {"_ref": 1}},
            {"FindDescriptor": {"_ref": 2, "set": "gone", "k_neighbors": 1}},
            {"AddConnection": {"class": "has", "src": 1, "dst": 2}},
        ],
        [jpeg(), data[0].tobytes()],
    )
    r, _ = ok(
        db,
        [
            {"FindDescriptorSet": {"_ref": 1, "with_name": "gone"}},
            {"DeleteDescriptorSet": {"ref": 1}},
        ],
    )
    assert body(r, 1) == {"status": 0, "count": 1}
    assert one(db, {"FindDescriptor": {"results": {"count": True}}})["count"] == 3
    assert one(db, {"FindConnection": {"results": {"count": True}}})["count"] == 3
    assert fail(db, [{"FindDescriptor": {"set": "gone", "k_neighbors": 1}}], [data[0].tobytes()])[
        "info"
    ].count("Not Found")
    # The SDK's wipe: DeleteDescriptorSet with an expression matching everything.
    one(db, {"DeleteImage": {}})
    assert one(db, {"DeleteDescriptorSet": {"constraints": ["$_uniqueid", "!=", "0.0.0"]}}) == {
        "status": 0,
        "count": 1,
    }
    assert one(db, {"GetSchema": {}}) == {"status": 0, "entities": None, "connections": None}


def test_a_set_added_again_after_delete_starts_empty(db):
    data = vectors(20, 4)
    add_set(db, "s", data)
    assert len(knn(db, "s", data[0], 5)) == 5
    one(db, {"DeleteDescriptorSet": {"with_name": "s"}})
    one(db, {"AddDescriptorSet": {"name": "s", "dimensions": 4}})
    assert knn(db, "s", data[0], 5) == []


# --- adding descriptors --------------------------------------------------------------------------


def test_bad_vectors_fail_and_add_nothing(db):
    one(db, {"AddDescriptorSet": {"name": "s", "dimensions": 4}})
    good = np.ones(4, np.float32).tobytes()
    cases = [
        ([{"AddDescriptor": {"set": "s"}}], [np.ones(3, np.float32).tobytes()], "Dimensions"),
        ([{"AddDescriptor": {"set": "s"}}], [b"\x00" * 15], "4 bytes"),
        (
            [{"AddDescriptor": {"set": "s"}}],
            [np.array([1, np.nan, 0, 0], np.float32).tobytes()],
            "NaN",
        ),
        (
            [{"AddDescriptor": {"set": "s"}}],
            [np.array([1, np.inf, 0, 0], np.float32).tobytes()],
            "infinite",
        ),
        ([{"AddDescriptor": {"set": "nope"}}], [good], "Not Found"),
        ([{"AddDescriptor": {"set": "s", "label": 3}}], [good], "label"),
        ([{"FindDescriptor": {"set": "s", "k_neighbors": 0}}], [good], "k_neighbors"),
        ([{"FindDescriptor": {"set": "s", "k_neighbors": -2}}], [good], "k_neighbors"),
        ([{"FindDescriptor": {"k_neighbors": 2}}], [good], "set"),
        ([{"FindDescriptor": {"set": "s", "k_neighbors": 2, "metric": "IP"}}], [good], "metric"),
        ([{"FindDescriptor": {"set": "s", "k_neighbors": 2, "engine": "Flat"}}], [good], "engine"),
        ([{"FindDescriptor": {"set": "s", "k_neighbors": 2}}], [b"\x00" * 8], "Dimensions"),
        ([{"ClassifyDescriptor": {"set": "s", "k_neighbors": 2}}], [good], "No labels"),
    ]
    for cmds, blobs, fragment in cases:
        r = fail(db, [{"AddDescriptor": {"set": "s"}}, *cmds], [good, *blobs])
        assert fragment in r["info"], (cmds, r)
    assert one(db, {"FindDescriptor": {"results": {"count": True}}})["count"] == 0
    # k-NN without a blob is a blob-count error before anything runs.
    assert "blobs" in fail(db, [{"FindDescriptor": {"set": "s", "k_neighbors": 1}}])["info"]


def test_labels_properties_if_not_found_and_stored_bytes(db):
    one(db, {"AddDescriptorSet": {"name": "s", "dimensions": 3}})
    raw = np.array([0.5, -1.25, 3.0], "<f4").tobytes()
    r, _ = ok(
        db,
        [
            {"AddDescriptor": {"set": "s", "label": "cat", "properties": {"id": 1}}},
            {"AddDescriptor": {"set": "s", "properties": {"id": 2}}},
        ],
        [raw, raw],
    )
    r, _ = ok(
        db,
        [
            {"AddDescriptor": {"_ref": 1, "set": "s", "if_not_found": ["$id", "==", 1]}},
            {"FindDescriptor": {"is_connected_to": {"ref": 1}, "results": {"count": True}}},
        ],
        [raw],
    )
    assert body(r, 0) == {"status": 2, "info": "Object Exists!"}
    got = one(
        db,
        {
            "FindDescriptor": {
                "set": "s",
                "labels": True,
                "blobs": True,
                "results": {"list": ["id"]},
                "sort": "id",
            }
        },
    )
    assert [(e["id"], e["_label"]) for e in got["entities"]] == [(1, "cat"), (2, "None")]
    _, blobs = ok(db, [{"FindDescriptor": {"set": "s", "blobs": True}}])
    assert blobs == [raw, raw]


def test_descriptors_connect_to_images_both_ways(db):
    """What the SDK's CLIP loader and Images.get_similar_images send."""
    data = vectors(3, 4)
    one(db, {"AddDescriptorSet": {"name": "clip", "dimensions": 4, "metric": "CS"}})
    for i in range(3):
        ok(
            db,
            [
                {"AddImage": {"_ref": 1, "properties": {"name": f"img{i}"}}},
                {
                    "AddDescriptor": {
                        "set": "clip",
                        "properties": {"image_sha256": f"h{i}"},
                        "if_not_found": ["$image_sha256", "==", f"h{i}"],
                        "connect": {"ref": 1},
                    }
                },
            ],
            [jpeg(), data[i].tobytes()],
        )
    # image -> its descriptor, the vector comes back as a blob
    r, blobs = ok(
        db,
        [
            {"FindImage": {"_ref": 1, "constraints": {"name": ["==", "img1"]}}},
            {"FindDescriptor": {"set": "clip", "is_connected_to": {"ref": 1}, "blobs": True}},
        ],
    )
    assert body(r, 1)["returned"] == 1 and blobs == [data[1].tobytes()]
    # descriptors -> their images, grouped by descriptor
    r, _ = ok(
        db,
        [
            {
                "FindDescriptor": {
                    "_ref": 1,
                    "set": "clip",
                    "k_neighbors": 2,
                    "blobs": False,
                    "distances": True,
                    "uniqueids": True,
                }
            },
            {
                "FindImage": {
                    "is_connected_to": {"ref": 1},
                    "group_by_source": True,
                    "results": {"list": ["_uniqueid", "name"]},
                }
            },
        ],
        blobs,
    )
    descs = body(r, 0)["entities"]
    groups = body(r, 1)["entities"]
    assert descs[0]["_distance"] == pytest.approx(1.0, abs=1e-6)
    assert [groups[d["_uniqueid"]][0]["name"] for d in descs][0] == "img1"
    schema = one(db, {"GetSchema": {}})["connections"]["classes"]
    assert schema["_DescriptorConnection"]["src"] == "_Descriptor"
    assert schema["_DescriptorSetToDescriptor"]["dst"] == "_Descriptor"


# --- k-NN ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("metric", ["L2", "IP", "CS"])
def test_exact_knn_matches_brute_force(db, metric):
    data = vectors(600, 16, seed=1)
    add_set(db, "s", data, metric=metric, engine="FaissFlat")
    for qi in range(5):
        q = vectors(1, 16, seed=100 + qi)[0]
        got = knn(db, "s", q, 10)
        want = brute_top(metric, data, q, 10)
        assert [e["n"] for e in got] == want
        np.testing.assert_allclose(
            [e["_distance"] for e in got], brute(metric, data, q)[want], rtol=1e-5
        )


def test_squared_l2_in_float32(db):
    """The VDMS check: vectors 20 apart are 400 apart, exactly, and identical ones 0."""
    data = np.array([[i * 20.0] * 1 + [0.0] * 99 for i in range(5)], np.float32) + 1.0
    add_set(db, "s", data)
    got = knn(db, "s", data[2], 3)
    assert [e["_distance"] for e in got] == [0.0, 400.0, 400.0]
    assert [e["n"] for e in got] == [2, 1, 3]


@pytest.mark.parametrize("metric", ["L2", "IP", "CS"])
def test_approximate_knn_recall_and_exact_distances(db, metric):
    n = EXACT_BELOW + 2000
    data = vectors(n, 12, seed=2)
    add_set(db, "s", data, metric=metric, engine="HNSW", batch=2000)
    hits = 0
    for qi in range(10):
        q = vectors(1, 12, seed=200 + qi)[0]
        got = knn(db, "s", q, 10)
        ids = [e["n"] for e in got]
        hits += len(set(ids) & set(brute_top(metric, data, q, 10)))
        np.testing.assert_allclose(
            [e["_distance"] for e in got], brute(metric, data, q)[ids], rtol=1e-5, atol=1e-6
        )
        d = [e["_distance"] for e in got]
        assert d == sorted(d, reverse=metric != "L2")
    assert hits / 100 >= 0.9
    # The query may ask for the exact engine when the set has it; the HNSW-only set has not.
    fail(
        db,
        [{"FindDescriptor": {"set": "s", "k_neighbors": 3, "engine": "Flat"}}],
        [data[0].tobytes()],
    )


def test_metric_per_query(db):
    data = vectors(200, 8, seed=3)
    add_set(db, "s", data, metric=["L2", "IP", "CS"])
    q = data[11] * 3
    for metric in ("L2", "IP", "CS"):
        got = knn(db, "s", q, 5, metric=metric)
        assert [e["n"] for e in got] == brute_top(metric, data, q, 5)


def test_constraints_knn_first_and_filter_first(db):
    data = vectors(400, 8, seed=4)
    add_set(db, "s", data)
    q = data[3] + 0.01
    even = np.arange(400) % 2 == 0
    top = brute_top("L2", data, q, 10)
    # knn_first (default): the 10 nearest, then the filter: only the even ones among them.
    got = knn(db, "s", q, 10, constraints=["all", ["$even", "==", True]])
    assert [e["n"] for e in got] == [i for i in top if even[i]]
    # knn_first false (and the old spelling): the 10 nearest among the even ones.
    for flag in ("knn_first", "knnfirst"):
        got = knn(db, "s", q, 10, constraints={"even": ["==", True]}, **{flag: False})
        assert [e["n"] for e in got] == brute_top("L2", data, q, 10, keep=even)
    # Selective filter (filter first) and loose one (search then filter) agree with brute force.
    for lo in (395, 10):
        keep = np.arange(400) >= lo
        got = knn(db, "s", q, 10, knn_first=False, constraints={"n": [">=", lo]})
        assert [e["n"] for e in got] == brute_top("L2", data, q, 10, keep=keep)
    got = knn(db, "s", q, 10, knn_first=False, with_label="l1")
    assert [e["n"] for e in got] == brute_top("L2", data, q, 10, keep=np.arange(400) % 3 == 1)


def test_knn_with_constraints_on_the_approximate_engine(db):
    n = EXACT_BELOW + 1000
    data = vectors(n, 8, seed=5)
    add_set(db, "s", data, engine="HNSW", batch=2000)
    q = data[5]
    keep = np.arange(n) % 7 == 0
    got = knn(db, "s", q, 10, knn_first=False, constraints={"n": ["in", list(range(0, n, 7))]})
    want = brute_top("L2", data, q, 10, keep=keep)
    assert len(set(e["n"] for e in got) & set(want)) >= 9


def test_fewer_than_k_and_paging_after_ranking(db):
    data = vectors(4, 4)
    add_set(db, "s", data)
    assert len(knn(db, "s", data[0], 10)) == 4
    full = [e["n"] for e in knn(db, "s", data[0], 4)]
    assert [e["n"] for e in knn(db, "s", data[0], 4, limit=2, offset=1)] == full[1:3]
    got = one(
        db,
        {"FindDescriptor": {"set": "s", "k_neighbors": 3, "results": {"count": True}}},
        [data[0].tobytes()],
    )
    assert got["count"] == 3


def test_no_set_at_all(db):
    add_set(db, "a", vectors(3, 4))
    add_set(db, "b", vectors(5, 2))
    assert one(db, {"FindDescriptor": {"results": {"count": True}}})["count"] == 8
    got = one(
        db,
        {
            "FindDescriptor": {
                "constraints": ["$n", "==", 4],
                "results": {"list": ["n"]},
                "blobs": True,
            }
        },
    )
    assert got["returned"] == 1
    r, _ = ok(
        db,
        [
            {"FindDescriptorSet": {"_ref": 1, "with_name": "b"}},
            {
                "FindDescriptor": {
                    "set": "b",
                    "is_connected_to": {"ref": 1, "connection_class": "_DescriptorSetToDescriptor"},
                    "results": {"count": True},
                }
            },
        ],
    )
    assert body(r, 1)["count"] == 5


def test_deletes_and_updates_show_at_once(db):
    data = vectors(100, 8, seed=6)
    add_set(db, "s", data)
    q = data[42]
    assert knn(db, "s", q, 1)[0]["n"] == 42
    one(db, {"DeleteDescriptor": {"set": "s", "constraints": {"n": ["==", 42]}}})
    got = knn(db, "s", q, 3)
    assert 42 not in [e["n"] for e in got] and len(got) == 3
    assert [e["n"] for e in got] == [i for i in brute_top("L2", data, q, 4) if i != 42]
    one(
        db,
        {
            "UpdateDescriptor": {
                "set": "s",
                "constraints": {"n": ["==", got[0]["n"]]},
                "label": "moved",
                "properties": {"seen": True},
            }
        },
    )
    top = knn(db, "s", q, 1, labels=True, results={"list": ["n", "seen"]})[0]
    assert top["_label"] == "moved" and top["seen"] is True
    # The SDK's remove_all_descriptorsets deletes descriptors as entities.
    r, _ = ok(
        db,
        [
            {"DeleteConnection": {"with_class": "_DescriptorSetToDescriptor"}},
            {"DeleteEntity": {"with_class": "_Descriptor"}},
        ],
    )
    assert body(r, 1)["count"] == 99
    assert knn(db, "s", q, 3) == []
    assert len(db.vectors.get(_set_id(db, "s"))) == 0


def _set_id(db: Database, name: str) -> int:
    uid = one(db, {"FindDescriptorSet": {"with_name": name, "uniqueids": True}})["entities"][0]
    return int(uid["_uniqueid"].split(".")[2])


def test_a_rolled_back_query_leaves_the_index_unchanged(db):
    data = vectors(30, 4, seed=7)
    add_set(db, "s", data)
    before = knn(db, "s", data[0], 30)
    far = np.full(4, 1000, np.float32)
    fail(
        db,
        [
            {"AddDescriptor": {"set": "s", "properties": {"n": 99}}},
            {"DeleteDescriptor": {"set": "s", "constraints": {"n": ["<", 10]}}},
            {
                "FindEntity": {
                    "with_class": "x",
                    "unique": True,
                    "constraints": {"no": ["==", None]},
                }
            },
            {"AddEntity": {"class": "_bad"}},
        ],
        [far.tobytes()],
    )
    assert knn(db, "s", data[0], 30) == before
    assert knn(db, "s", far, 1)[0]["n"] != 99
    assert len(db.vectors.get(_set_id(db, "s"))) == 30


def test_reopen_and_a_second_process_catch_up(folder):
    data = vectors(50, 4, seed=8)
    with open_db(folder) as first:
        add_set(first, "s", data)
        assert knn(first, "s", data[9], 1)[0]["n"] == 9
        with open_db(folder) as second:  # another process on the same folder
            assert knn(second, "s", data[9], 1)[0]["n"] == 9
            ok(
                second,
                [
                    {"AddDescriptor": {"set": "s", "properties": {"n": 500}}},
                    {"DeleteDescriptor": {"set": "s", "constraints": {"n": ["==", 9]}}},
                ],
                [(data[9] + 0.001).tobytes()],
            )
        # The first one's index was loaded before; the set's _version tells it to catch up
        # (new rows by id); the deleted vector leaves the index when the search meets it.
        assert knn(first, "s", data[9], 1)[0]["n"] == 500
        assert len(first.vectors.get(_set_id(first, "s"))) == 50
    with open_db(folder) as again:
        got = knn(again, "s", data[9], 2)
        assert [e["n"] for e in got][0] == 500 and 9 not in [e["n"] for e in got]


@pytest.fixture
def servers(folder, backend):
    """Two Databases on one shared backend, as two servers are: the change log they replay is
    the PostgreSQL backend's (an embedded folder has one writer and no log)."""
    if backend == "sqlite":
        pytest.skip("the change log is the shared (PostgreSQL) backend's")
    with open_db(folder) as first, open_db(folder) as second:
        yield first, second


def test_servers_on_a_shared_backend_replay_its_change_log(servers):
    data = vectors(40, 4, seed=11)
    first, second = servers
    add_set(first, "s", data)
    sid = _set_id(first, "s")
    assert knn(second, "s", data[3], 1)[0]["n"] == 3  # second loads the index
    far = np.full(4, 50, np.float32)
    ok(
        first,
        [
            {"AddDescriptor": {"set": "s", "properties": {"n": 100}}},
            {"DeleteDescriptor": {"set": "s", "constraints": {"n": ["in", [20, 21]]}}},
        ],
        [far.tobytes()],
    )
    with first.store.read() as txn:
        last = txn.last_change(sid)
    assert knn(second, "s", far, 1)[0]["n"] == 100
    vs = second.vectors.get(sid)
    # Caught up from the log's entries: both deletions applied at once (not when a search
    # meets them), and the index remembers where in the log it stands.
    assert vs.seq == last and len(vs) == 39
    ok(second, [{"DeleteDescriptor": {"set": "s", "constraints": {"n": ["==", 100]}}}])
    assert knn(first, "s", far, 1)[0]["n"] != 100
    assert len(first.vectors.get(sid)) == 38


def test_classify_descriptor(db):
    one(db, {"AddDescriptorSet": {"name": "s", "dimensions": 2}})
    pts = [
        ([0, 0], "a"),
        ([0, 1], "a"),
        ([1, 0], "b"),
        ([5, 5], "b"),
        ([5, 6], "b"),
        ([9, 9], None),
    ]
    ok(
        db,
        [{"AddDescriptor": {"set": "s", **({"label": lab} if lab else {})}} for _, lab in pts],
        [np.array(p, np.float32).tobytes() for p, _ in pts],
    )
    q = np.array([0.1, 0.2], np.float32).tobytes()
    assert one(db, {"ClassifyDescriptor": {"set": "s", "k_neighbors": 3}}, [q]) == {
        "status": 0,
        "label": "a",
    }
    q = np.array([6, 6], np.float32).tobytes()
    assert one(db, {"ClassifyDescriptor": {"set": "s", "k_neighbors": 3}}, [q])["label"] == "b"


def test_engines_cover_the_documented_names():
    assert {
        "HNSW",
        "Flat",
        "FaissFlat",
        "FaissIVFFlat",
        "FaissHNSWFlat",
        "TileDBDense",
        "TileDBSparse",
        "Flinng",
        "IVF",
    } == ENGINES
    assert not EXACT_ENGINES & APPROXIMATE_ENGINES


@pytest.mark.sqlite_only  # the saved index is a file beside an embedded database
def test_saved_index_is_read_back_caught_up_or_rebuilt(folder):
    data = vectors(40, 4, seed=9)
    far = np.full(4, 50, np.float32)
    with Database(folder) as first:
        add_set(first, "s", data)
        assert knn(first, "s", data[0], 1)[0]["n"] == 0  # loads the index; close saves it
    assert len(list((folder / "vectors").glob("*.v*"))) == 1
    with Database(folder) as second:  # writes without loading the index: saves nothing
        ok(second, [{"AddDescriptor": {"set": "s", "properties": {"n": 1000}}}], [far.tobytes()])
    with Database(folder) as third:
        assert third.load_vector_indexes() == 1  # what a server does in the background at start
        assert third.vectors.get(_set_id(third, "s")) is not None
        assert knn(third, "s", far, 1)[0]["n"] == 1000
        vs = third.vectors.get(_set_id(third, "s"))
        assert vs.saved_version is not None and vs.saved_version < vs.version  # read, caught up
    saved = list((folder / "vectors").glob("*.v*"))
    assert len(saved) == 1  # the older copy is gone
    (saved[0] / "vectors.npy").write_bytes(b"not numpy")
    with Database(folder) as fourth:
        want = brute_top("L2", np.vstack([data, far]), data[3], 41)
        assert [e["n"] for e in knn(fourth, "s", data[3], 41)] == [
            1000 if i == 40 else i for i in want
        ]
    one_more = Database(folder)
    one(one_more, {"DeleteDescriptorSet": {"with_name": "s"}})
    one_more.close()
    assert not list((folder / "vectors").glob("*.v*"))


def test_a_rolled_back_search_in_a_write_query_leaves_no_vector_behind(folder):
    data = vectors(20, 4, seed=10)
    far = np.full(4, 77, np.float32)
    with open_db(folder) as db:
        add_set(db, "s", data)
    with open_db(folder) as db:  # the index is loaded by a k-NN inside a failing write query
        fail(
            db,
            [
                {"AddDescriptor": {"set": "s", "properties": {"n": 99}}},
                {"FindDescriptor": {"set": "s", "k_neighbors": 1}},
                {"AddEntity": {"class": "_bad"}},
            ],
            [far.tobytes(), far.tobytes()],
        )
        assert db.vectors.get(_set_id(db, "s")) is None
        assert knn(db, "s", far, 1)[0]["n"] != 99
        assert len(db.vectors.get(_set_id(db, "s"))) == 20


def test_deletes_and_adds_reach_a_built_graph_at_once(db):
    n = EXACT_BELOW + 500
    data = vectors(n, 8, seed=11)
    add_set(db, "s", data, engine="HNSW", batch=2500)
    q = data[1234]
    assert knn(db, "s", q, 1)[0]["n"] == 1234  # builds the graph
    one(db, {"DeleteDescriptor": {"set": "s", "constraints": {"n": ["in", [1234, 77]]}}})
    got = [e["n"] for e in knn(db, "s", q, 5)]
    assert 1234 not in got and len(got) == 5
    ok(db, [{"AddDescriptor": {"set": "s", "properties": {"n": -1}}}], [(q + 1e-4).tobytes()])
    assert knn(db, "s", q, 1)[0]["n"] == -1
    assert len(db.vectors.get(_set_id(db, "s"))) == n - 1


def test_find_descriptor_batch_is_refused_clearly_and_adds_nothing(db):
    add_set(db, "s", vectors(5, 4))
    two = vectors(2, 4, seed=3)
    err = fail(
        db,
        [
            {"AddDescriptor": {"set": "s", "properties": {"n": 99}}},
            {"FindDescriptorBatch": {"set": "s", "k_neighbors": 2, "n_descriptors": 2}},
        ],
        [two[0].tobytes(), two.tobytes()],
    )
    assert "FindDescriptorBatch is not supported" in err["info"]
    assert "one FindDescriptor" in err["info"]
    assert len(knn(db, "s", two[0], 10)) == 5


# --- deletes other than DeleteDescriptor, the change log's trimming ------------------------------


def test_delete_entity_takes_descriptors_as_their_own_commands_do(db):
    """A DeleteEntity naming no class (by ref or constraints) that reaches descriptors or sets
    deletes them as DeleteDescriptor and DeleteDescriptorSet would: vectors leave the index at
    once, and a set takes its descriptors (none is left to join a set made again by name)."""
    data = vectors(30, 4, seed=12)
    add_set(db, "s", data)
    sid = _set_id(db, "s")
    assert len(knn(db, "s", data[5], 3)) == 3  # loads the index
    r, _ = ok(
        db,
        [
            {"AddEntity": {"class": "Person", "_ref": 1, "properties": {"n": 5}}},
            {
                "FindDescriptor": {
                    "set": "s",
                    "_ref": 2,
                    "constraints": {"n": ["in", [5, 6]]},
                }
            },
            {"FindEntity": {"_ref": 3, "constraints": {"n": ["==", 5]}}},  # Person + descriptor
            {"DeleteEntity": {"ref": 3}},
        ],
    )
    assert body(r, 3)["count"] == 2
    vs = db.vectors.get(sid)
    assert len(vs) == 29 and count(db, "s", 5) == 0 and count(db, "s", 6) == 1
    assert 5 not in [e["n"] for e in knn(db, "s", data[5], 30)]
    r, _ = ok(db, [{"DeleteEntity": {"constraints": {"n": [">=", 20]}}}])
    assert body(r)["count"] == 10
    assert len(vs) == 19
    assert sorted(e["n"] for e in knn(db, "s", data[0], 30)) == [i for i in range(20) if i != 5]
    # The set through a DeleteEntity by ref: its descriptors go with it.
    ok(db, [{"FindDescriptorSet": {"_ref": 1, "with_name": "s"}}, {"DeleteEntity": {"ref": 1}}])
    assert db.vectors.get(sid) is None
    assert one(db, {"FindDescriptor": {"results": {"count": True}}})["count"] == 0
    one(db, {"AddDescriptorSet": {"name": "s", "dimensions": 4}})
    assert knn(db, "s", data[0], 5) == []


def count(db: Database, name: str, n: int) -> int:
    find = {"set": name, "constraints": {"n": ["==", n]}, "results": {"count": True}}
    return one(db, {"FindDescriptor": find})["count"]


def test_other_deletes_reach_another_servers_index_through_the_log(servers):
    data = vectors(40, 4, seed=13)
    first, second = servers
    add_set(first, "s", data)
    add_set(first, "t", data[:5])
    sid, tid = _set_id(first, "s"), _set_id(first, "t")
    assert knn(second, "s", data[3], 1)[0]["n"] == 3  # second loads both indexes
    assert knn(second, "t", data[3], 1)[0]["n"] == 3
    ok(
        first,
        [
            {"FindDescriptor": {"set": "s", "_ref": 1, "constraints": {"n": ["<", 4]}}},
            {"DeleteEntity": {"ref": 1}},
            {"FindDescriptorSet": {"_ref": 2, "with_name": "t"}},
            {"DeleteEntity": {"ref": 2}},
        ],
    )
    with first.store.read() as txn:
        last = txn.last_change(sid)
    # Without a search: what a server's background pass does every half second.
    assert second.sync_vector_indexes() == (1, [tid])
    vs = second.vectors.get(sid)
    assert len(vs) == 36 and vs.seq == last and second.vectors.get(tid) is None
    got = [e["n"] for e in knn(second, "s", data[3], 40)]
    assert got == [i + 4 for i in brute_top("L2", data[4:], data[3], 40)]
    assert second.sync_vector_indexes() == (0, [])


def test_a_server_behind_a_trimmed_log_compares_its_index_with_the_rows(servers):
    """The change log keeps KEEP_CHANGES_FOR seconds of entries. A server whose index stands
    before what was trimmed cannot replay: it compares every id instead, so it misses neither
    the additions nor the deletions of the trimmed entries."""
    data = vectors(50, 4, seed=14)
    far = np.full(4, 40, np.float32)
    first, second = servers
    add_set(first, "s", data)
    sid = _set_id(first, "s")
    assert knn(second, "s", data[0], 1)[0]["n"] == 0
    assert knn(first, "s", data[0], 1)[0]["n"] == 0
    # second is "away" (no search, no background pass) while first changes the set
    ok(
        first,
        [
            {"AddDescriptor": {"set": "s", "properties": {"n": 100}}},
            {"DeleteDescriptor": {"set": "s", "constraints": {"n": ["<", 10]}}},
        ],
        [far.tobytes()],
    )
    with first.store.read() as txn:
        last = txn.last_change(sid)
    # The writer's own index stands after its entries: no reason to compare later.
    assert first.vectors.get(sid).seq == last
    assert first.store.trim_changes(keep=0) == 50 + 11
    with first.store.read() as txn:
        assert txn.changes_since(sid, 0) is None  # trimmed past 0
        assert txn.changes_since(sid, last) == []  # nothing lost after the writer's place
        assert txn.last_change(sid) == last  # the horizon counts
    got = knn(second, "s", far, 41)
    assert got[0]["n"] == 100 and sorted(e["n"] for e in got[1:]) == list(range(10, 50))
    vs = second.vectors.get(sid)
    assert len(vs) == 41 and vs.seq == last
    # Both carry on replaying from there.
    ok(second, [{"DeleteDescriptor": {"set": "s", "constraints": {"n": ["==", 100]}}}])
    assert knn(first, "s", far, 1)[0]["n"] != 100
    assert len(first.vectors.get(sid)) == 40
    assert first.store.trim_changes(keep=3600) == 0  # younger entries stay
