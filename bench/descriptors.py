"""Vector index libraries and lensdb's descriptors, on the same clustered vectors.

    PYTHONPATH=src .venv/bin/python bench/descriptors.py [--n 50000] [--dim 256] [--queries 200]
    PYTHONPATH=src .venv/bin/python bench/descriptors.py --lensdb [--n 200000 --dim 512]

Libraries: per library, build time, queries/s, recall@k against an exact float32 numpy brute
force computed in the same run, and the ratio of its queries/s to the brute force's. This is
the measurement behind lensdb's choice of index library (see src/lensdb/index/__init__.py).

--lensdb: descriptors through `Database.query` in-process: ingest vectors/s against a raw loop
(SQLite rows with the vector blobs plus hnswlib add_items, the same work without the query
language), FindDescriptor queries/s on the HNSW engine against hnswlib called directly with the
same parameters on the same vectors, recall@k, the exact engine against the brute force
(identical ids), memory per vector, and the time to open the set with and without its saved
index. The k-NN comparison alternates the two for --rounds passes and prints the median ratio
and its range, by CPU time (steady on a shared machine) and by the wall clock; --knn-only stops
after it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np


def clustered(n: int, dim: int, clusters: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(clusters, dim)).astype(np.float32) * 4
    which = rng.integers(0, clusters, size=n)
    return (centers[which] + rng.normal(size=(n, dim)).astype(np.float32)).astype(np.float32)


def brute_force(data: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    norms = np.einsum("ij,ij->i", data, data)
    out = np.empty((len(queries), k), dtype=np.int64)
    for i, q in enumerate(queries):
        d = norms - 2 * (data @ q)
        top = np.argpartition(d, k)[:k]
        out[i] = top[np.argsort(d[top])]
    return out


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    k = truth.shape[1]
    return float(np.mean([len(set(f[:k]) & set(t)) / k for f, t in zip(found, truth, strict=True)]))


def bench_faiss(data, queries, k, m, ef_c, ef_s):
    import faiss

    faiss.omp_set_num_threads(1)
    t = time.perf_counter()
    index = faiss.IndexHNSWFlat(data.shape[1], m)
    index.hnsw.efConstruction = ef_c
    index.add(data)
    build = time.perf_counter() - t
    index.hnsw.efSearch = ef_s
    t = time.perf_counter()
    found = np.stack([index.search(q[None, :], k)[1][0] for q in queries])
    return build, time.perf_counter() - t, found


def bench_usearch(data, queries, k, m, ef_c, ef_s):
    from usearch.index import Index

    t = time.perf_counter()
    index = Index(
        ndim=data.shape[1],
        metric="l2sq",
        dtype="f32",
        connectivity=m,
        expansion_add=ef_c,
        expansion_search=ef_s,
    )
    index.add(np.arange(len(data)), data, threads=1)
    build = time.perf_counter() - t
    t = time.perf_counter()
    found = np.stack([index.search(q, k).keys for q in queries])
    return build, time.perf_counter() - t, found


def bench_hnswlib(data, queries, k, m, ef_c, ef_s):
    import hnswlib

    t = time.perf_counter()
    index = hnswlib.Index(space="l2", dim=data.shape[1])
    index.init_index(max_elements=len(data), M=m, ef_construction=ef_c)
    index.set_num_threads(1)
    index.add_items(data, np.arange(len(data)))
    build = time.perf_counter() - t
    index.set_ef(ef_s)
    t = time.perf_counter()
    found = np.stack([index.knn_query(q[None, :], k)[0][0] for q in queries])
    return build, time.perf_counter() - t, found


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def qps(search: Callable[[np.ndarray], object], queries: np.ndarray) -> tuple[float, float]:
    """Queries/s by the wall clock and by this thread's CPU time. Both sides of a comparison
    run in one thread, so on a machine shared with other work the CPU-time figure is the
    steadier one: waiting for a core counts in neither."""
    t, c = time.perf_counter(), time.thread_time()
    for q in queries:
        search(q)
    return len(queries) / (time.perf_counter() - t), len(queries) / (time.thread_time() - c)


def exact_top(data: np.ndarray, q: np.ndarray, k: int) -> list[int]:
    d = np.einsum("ij,ij->i", data - q, data - q, dtype=np.float32)
    return [int(i) for i in np.argsort(d, kind="stable")[:k]]


def raw_ingest(folder: Path, data: np.ndarray, batch: int) -> float:
    import hnswlib

    from lensdb.index import HNSW_EF_CONSTRUCTION, HNSW_M

    t = time.perf_counter()
    con = sqlite3.connect(folder / "raw.sqlite")
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("CREATE TABLE d (id INTEGER PRIMARY KEY, props TEXT, vec BLOB)")
    graph = hnswlib.Index(space="l2", dim=data.shape[1])
    graph.init_index(max_elements=len(data), M=HNSW_M, ef_construction=HNSW_EF_CONSTRUCTION)
    graph.set_num_threads(1)
    for start in range(0, len(data), batch):
        chunk = data[start : start + batch]
        with con:
            con.executemany(
                "INSERT INTO d VALUES (?, ?, ?)",
                [
                    (start + i, json.dumps({"n": start + i}), v.tobytes())
                    for i, v in enumerate(chunk)
                ],
            )
        graph.add_items(chunk, np.arange(start, start + len(chunk)))
    con.close()
    return time.perf_counter() - t


def loader_ingest(folder: Path, data: np.ndarray, raw: float) -> None:
    """The SDK's ParallelLoader with DescriptorDataCSV into a `lensdb serve` (8 threads, 100
    descriptors per query), then the first k-NN (which builds the graph)."""
    import sys

    from aperturedb.Connector import Connector
    from aperturedb.DescriptorDataCSV import DescriptorDataCSV
    from aperturedb.ParallelLoader import ParallelLoader

    sys.path.insert(0, str(Path(__file__).parent))
    import server as server_bench  # bench/server.py: starting a server the same way

    np.save(folder / "vectors.npy", data)
    with open(folder / "descriptors.csv", "w") as f:
        f.write("filename,index,set,id\n")
        f.writelines(f"{folder / 'vectors.npy'},{i},loaded,{i}\n" for i in range(len(data)))
    port, http_port = server_bench.free_port(), server_bench.free_port()
    proc = server_bench.start_lensdb(folder / "served", port, http_port)
    try:
        client = Connector(
            host="localhost",
            port=port,
            user="admin",
            password=server_bench.ADMIN_PASSWORD,
            use_ssl=False,
        )
        client.query(
            [
                {
                    "AddDescriptorSet": {
                        "name": "loaded",
                        "dimensions": data.shape[1],
                        "engine": "HNSW",
                    }
                }
            ]
        )
        csv_data = DescriptorDataCSV(str(folder / "descriptors.csv"))
        loader = ParallelLoader(client)
        t = time.perf_counter()
        loader.ingest(csv_data, batchsize=100, numthreads=8, stats=False)
        took = time.perf_counter() - t
        t = time.perf_counter()
        client.query(
            [{"FindDescriptor": {"set": "loaded", "k_neighbors": 10}}], [data[0].tobytes()]
        )
        first = time.perf_counter() - t
        print(
            f"ParallelLoader + DescriptorDataCSV over TCP: {len(data) / took:8.0f} vec/s rows "
            f"only ({loader.error_counter} failed queries); with the first k-NN's graph build "
            f"({first:.2f} s): {len(data) / (took + first):8.0f} vec/s, "
            f"{raw / (took + first):.2f}x the raw loop"
        )
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def bench_lensdb(
    a: argparse.Namespace, data: np.ndarray, queries: np.ndarray, truth: np.ndarray
) -> None:
    import hnswlib

    from lensdb import Database
    from lensdb.index import HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH, HNSW_M

    k, batch = a.k, 1000
    folder = Path(tempfile.mkdtemp(prefix="lensdb-bench-vec-"))
    try:
        raw = raw_ingest(folder, data, batch)
        db = Database(folder / "db")
        db.query(
            [
                {"AddDescriptorSet": {"name": "hnsw", "dimensions": a.dim, "engine": "HNSW"}},
                {"AddDescriptorSet": {"name": "flat", "dimensions": a.dim, "engine": "Flat"}},
            ]
        )
        t = time.perf_counter()
        for start in range(0, len(data), batch):
            chunk = data[start : start + batch]
            r, _ = db.query(
                [
                    {"AddDescriptor": {"set": "hnsw", "properties": {"n": start + i}}}
                    for i in range(len(chunk))
                ],
                [v.tobytes() for v in chunk],
            )
            assert isinstance(r, list), r
        ingest = time.perf_counter() - t
        rss0 = rss_mb()
        t = time.perf_counter()
        db.query([{"FindDescriptor": {"set": "hnsw", "k_neighbors": k}}], [queries[0].tobytes()])
        first = time.perf_counter() - t  # loads the vectors from their blobs and builds the graph
        per_vector = (rss_mb() - rss0) * 2**20 / len(data)
        print(f"raw loop (SQLite rows + hnswlib add_items): {len(data) / raw:8.0f} vec/s")
        print(
            f"lensdb ingest (Database.query, {batch} AddDescriptor per query): "
            f"{len(data) / ingest:8.0f} vec/s rows only; the HNSW graph is built at the first "
            f"k-NN ({first:.2f} s, reading the vectors back from their blobs): "
            f"{len(data) / (ingest + first):8.0f} vec/s with it, "
            f"{raw / (ingest + first):.2f}x the raw loop"
        )
        print(
            f"memory {per_vector:.0f} bytes/vector ({a.dim * 4} of them the float32 vector, "
            f"held once in numpy and once in the graph)"
        )
        if a.loader:
            loader_ingest(folder, data, raw)

        def lensdb_search(q: np.ndarray) -> list[int]:
            r, _ = db.query(
                [{"FindDescriptor": {"set": "hnsw", "k_neighbors": k, "results": {"list": ["n"]}}}],
                [q.tobytes()],
            )
            return [e["n"] for e in r[0]["FindDescriptor"]["entities"]]

        found = np.array([lensdb_search(q) for q in queries])
        graph = hnswlib.Index(space="l2", dim=a.dim)
        graph.init_index(max_elements=len(data), M=HNSW_M, ef_construction=HNSW_EF_CONSTRUCTION)
        graph.set_num_threads(1)
        graph.add_items(data, np.arange(len(data)))
        graph.set_ef(max(HNSW_EF_SEARCH, k))

        def direct_search(q: np.ndarray) -> None:
            graph.knn_query(q, k=k)

        # The machine is shared: alternate the two, one pass over the queries each, and compare
        # passes that ran side by side, so a burst of load elsewhere hits both.
        wall: list[tuple[float, float]] = []
        cpu: list[tuple[float, float]] = []
        for _ in range(a.rounds):
            (lw, lc), (dw, dc) = qps(lensdb_search, queries), qps(direct_search, queries)
            wall.append((lw, dw))
            cpu.append((lc, dc))
        for label, runs in (("CPU time", cpu), ("wall clock", wall)):
            ratios = [mine / theirs for mine, theirs in runs]
            print(
                f"FindDescriptor HNSW in-process ({label}): "
                f"{np.median([r[0] for r in runs]):8.1f} q/s; hnswlib direct "
                f"(M={HNSW_M}, ef={max(HNSW_EF_SEARCH, k)}): "
                f"{np.median([r[1] for r in runs]):8.1f} q/s; ratio {np.median(ratios):.2f}x "
                f"(median of {a.rounds} alternating passes, range "
                f"{min(ratios):.2f}-{max(ratios):.2f})"
            )
        print(f"recall@{k} {recall(found, truth):.4f}")

        if a.knn_only:
            return
        n_flat = len(data)
        for start in range(0, n_flat, batch):
            chunk = data[start : start + batch]
            db.query(
                [
                    {"AddDescriptor": {"set": "flat", "properties": {"n": start + i}}}
                    for i in range(len(chunk))
                ],
                [v.tobytes() for v in chunk],
            )
        same = 0
        for q in queries[:50]:
            r, _ = db.query(
                [{"FindDescriptor": {"set": "flat", "k_neighbors": k, "results": {"list": ["n"]}}}],
                [q.tobytes()],
            )
            got = [e["n"] for e in r[0]["FindDescriptor"]["entities"]]
            same += got == exact_top(data[:n_flat], q, k)
        print(f"exact engine on {n_flat} vectors: {same}/50 answers identical to the brute force")
        db.close()  # saves the indexes
        for label in ("saved index", "rebuilt from rows"):
            if label == "rebuilt from rows":
                shutil.rmtree(folder / "db" / "vectors")
            t = time.perf_counter()
            again = Database(folder / "db")
            again.query(
                [{"FindDescriptor": {"set": "hnsw", "k_neighbors": k}}], [queries[0].tobytes()]
            )
            print(
                f"open + first k-NN of the {len(data)}-vector set, {label}: "
                f"{time.perf_counter() - t:.2f} s"
            )
            again.vectors.folder = None  # keep the timing of the next open honest
            again.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=100)
    ap.add_argument("--ef-search", type=int, default=100)
    ap.add_argument("--libs", default="faiss,usearch,hnswlib")
    ap.add_argument("--rounds", type=int, default=5, help="alternating k-NN passes (--lensdb)")
    ap.add_argument(
        "--knn-only",
        action="store_true",
        help="with --lensdb: only the k-NN comparison (skips the exact engine and reopen timings)",
    )
    ap.add_argument("--lensdb", action="store_true", help="benchmark lensdb's descriptors")
    ap.add_argument(
        "--loader",
        action="store_true",
        help="with --lensdb: also ParallelLoader ingest through `lensdb serve`",
    )
    a = ap.parse_args()
    data = clustered(a.n, a.dim, max(10, a.n // 1000), 1)
    queries = clustered(a.queries, a.dim, max(10, a.n // 1000), 1)[: a.queries] + 0.1
    queries = queries.astype(np.float32)
    t = time.perf_counter()
    truth = brute_force(data, queries, a.k)
    exact = time.perf_counter() - t
    print(
        f"{a.n} x {a.dim} float32, {a.queries} queries, k={a.k}, M={a.m}, "
        f"efConstruction={a.ef_construction}, efSearch={a.ef_search}, one thread"
    )
    print(f"numpy brute force: {a.queries / exact:9.1f} q/s")
    if a.lensdb:
        bench_lensdb(a, data, queries, truth)
        return
    runs = {"faiss": bench_faiss, "usearch": bench_usearch, "hnswlib": bench_hnswlib}
    for name in a.libs.split(","):
        build, qtime, found = runs[name](data, queries, a.k, a.m, a.ef_construction, a.ef_search)
        qps = a.queries / qtime
        print(
            f"{name:8s} build {build:7.2f} s ({a.n / build:8.0f} vec/s)  {qps:9.1f} q/s "
            f"({qps * exact / a.queries:6.1f}x brute force)  recall@{a.k} "
            f"{recall(found, truth):.4f}"
        )


if __name__ == "__main__":
    main()
