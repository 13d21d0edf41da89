"""Vector index libraries compared on the same clustered vectors, against numpy brute force.

    PYTHONPATH=src .venv/bin/python bench/descriptors.py [--n 50000] [--dim 256] [--queries 200]

Prints, per library: build time, queries/s, recall@k against an exact float32 numpy brute force
computed in the same run, and the ratio of its queries/s to the brute force's. This is the
measurement behind lensdb's choice of index library (see src/lensdb/index/__init__.py).
"""

from __future__ import annotations

import argparse
import time

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
    index = Index(ndim=data.shape[1], metric="l2sq", dtype="f32", connectivity=m,
                  expansion_add=ef_c, expansion_search=ef_s)
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=100)
    ap.add_argument("--ef-search", type=int, default=64)
    ap.add_argument("--libs", default="faiss,usearch,hnswlib")
    a = ap.parse_args()
    data = clustered(a.n, a.dim, max(10, a.n // 1000), 1)
    queries = clustered(a.queries, a.dim, max(10, a.n // 1000), 1)[:a.queries] + 0.1
    queries = queries.astype(np.float32)
    t = time.perf_counter()
    truth = brute_force(data, queries, a.k)
    exact = time.perf_counter() - t
    print(f"{a.n} x {a.dim} float32, {a.queries} queries, k={a.k}, M={a.m}, "
          f"efConstruction={a.ef_construction}, efSearch={a.ef_search}, one thread")
    print(f"numpy brute force: {a.queries / exact:9.1f} q/s")
    runs = {"faiss": bench_faiss, "usearch": bench_usearch, "hnswlib": bench_hnswlib}
    for name in a.libs.split(","):
        build, qtime, found = runs[name](data, queries, a.k, a.m, a.ef_construction, a.ef_search)
        qps = a.queries / qtime
        print(f"{name:8s} build {build:7.2f} s ({a.n / build:8.0f} vec/s)  {qps:9.1f} q/s "
              f"({qps * exact / a.queries:6.1f}x brute force)  recall@{a.k} "
              f"{recall(found, truth):.4f}")


if __name__ == "__main__":
    main()
