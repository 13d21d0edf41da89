"""In-memory vector indexes for descriptor sets: derived data, rebuilt from stored vectors.

Exact search is numpy over a float32 matrix; approximate search is an HNSW graph from hnswlib.
hnswlib was chosen by measurement (bench/descriptors.py, one thread, 50,000 x 256 clustered
float32 vectors, M=16, efConstruction=100, efSearch=64): hnswlib 9,406 queries/s at recall@10
0.976 and 8,428 vectors/s to build; faiss-cpu IndexHNSWFlat 4,684 q/s (recall 0.985, 7,597
vec/s); usearch 2,691 q/s (recall 0.982, 4,795 vec/s); numpy brute force 218 q/s. At 100,000 x
512: hnswlib 6,255 q/s (recall 0.969, 6,031 vec/s), faiss 4,342 (0.974, 5,127 vec/s), usearch
2,338 (0.969, 2,705 vec/s), brute force 45. hnswlib also marks deletions in place
(`mark_deleted`), which faiss's HNSW cannot, so a delete leaves the graph at once without a
rebuild, and it saves and loads a graph as one file.

Distances are float32: L2 is the squared Euclidean distance (ascending), IP the dot product and
CS the cosine similarity (both descending). The exact engines (and the filter-first plan) compute
them with numpy, so their `_distance` values and order are those of a brute force over the same
vectors. The approximate engine answers with hnswlib's own float32 distances (the same metric,
summed in another order: they differ from numpy's in the last bits, relative 1e-6 at most),
instead of recomputing them for its candidates: mapping the labels back to rows of the matrix,
gathering the vectors and ranking them again cost 15 us of a 65 us search (20,000 x 512,
one thread), a fifth of lensdb's whole overhead over hnswlib called directly.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

log = logging.getLogger(__name__)

METRICS = ("L2", "IP", "CS")
# Every engine name the SDK, its docs, workflows and VDMS send, and the index that serves it.
EXACT_ENGINES = frozenset({"Flat", "FaissFlat", "TileDBDense", "TileDBSparse"})
APPROXIMATE_ENGINES = frozenset({"HNSW", "FaissHNSWFlat", "IVF", "FaissIVFFlat", "Flinng"})
ENGINES = EXACT_ENGINES | APPROXIMATE_ENGINES
# Below this many vectors an approximate engine searches exactly: a numpy scan of 10,000 x 512
# float32 takes about 2 ms, less than building a graph would ever pay back.
EXACT_BELOW = 10_000
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 100
HNSW_EF_SEARCH = 100  # recall@10 0.956 at 64 on 200,000 x 512 clustered vectors: too close to 0.95
_SPACES = {"L2": "l2", "IP": "ip", "CS": "cosine"}


def distances(metric: str, vectors: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Exact float32 distances of `vectors` (n x d) to `query` under `metric`."""
    if metric == "L2":
        diff = vectors - query
        return np.einsum("ij,ij->i", diff, diff, dtype=np.float32)
    dots = vectors @ query
    if metric == "IP":
        return dots.astype(np.float32, copy=False)
    norms = np.linalg.norm(vectors, axis=1) * np.float32(np.linalg.norm(query))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(norms > 0, dots / norms, np.float32(0))
    return out.astype(np.float32, copy=False)


def rank(metric: str, dist: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k best distances, best first (ties by position, i.e. insertion order)."""
    key = dist if metric == "L2" else -dist
    if len(key) <= 64:
        # An index's candidates (k of them): a stable sort is the whole job, and cheaper than
        # a partition plus a lexsort.
        return np.argsort(key, kind="stable")[:k]
    if k < len(key):
        part = np.argpartition(key, k - 1)[:k]
        # Include every position tied with the k-th so ties resolve by position, as a stable
        # sort of the whole array would.
        kth = key[part].max()
        part = np.flatnonzero(key <= kth)
    else:
        part = np.arange(len(key))
    order = np.lexsort((part, key[part]))
    return part[order][:k]


class Hits(NamedTuple):
    """A search's answer, best first: the ids and their distances, as two lists. One object per
    search, not one per hit: a k-NN query's ten hit objects (NamedTuples, already four times
    cheaper to make than frozen dataclasses) cost 2 us of the 4 us between hnswlib's answer
    and the rows' look-up (timeit, 20,000 x 512)."""

    ids: list[int]
    distances: list[float]


def _ranked(ids: np.ndarray, dist: np.ndarray, order: np.ndarray) -> Hits:
    return Hits(ids[order].tolist(), dist[order].tolist())


NO_HITS = Hits([], [])


class VectorSet:
    """The vectors of one descriptor set, by object id, and the graphs built over them.

    Thread-safe: one lock guards changes and searches (a search holds it for its scan only).
    `version` is the set's change counter this index reflects (see engine/descriptors.py).
    """

    def __init__(self, dimensions: int, version: int = 0) -> None:
        self.dimensions = dimensions
        self.version = version
        self.saved_version: int | None = None
        # With a store that keeps a change log (store.base.ChangeLog): its last entry this index
        # reflects, so catching up reads only the entries after it.
        self.seq: int | None = None
        self.lock = threading.RLock()
        self._vectors = np.empty((0, dimensions), dtype=np.float32)
        self._ids = np.empty(0, dtype=np.int64)
        self._n = 0
        self.max_id = 0  # the highest id ever added: rows above it are new to this index
        self._row: dict[int, int] = {}
        self._graphs: dict[str, object] = {}  # metric -> hnswlib.Index

    def __len__(self) -> int:
        return self._n

    def __contains__(self, i: object) -> bool:
        return i in self._row

    def ids(self) -> set[int]:
        with self.lock:
            return set(self._row)

    def add(self, ids: Sequence[int], vectors: np.ndarray) -> None:
        """Add vectors (ids already present are skipped, so replaying a change is harmless)."""
        with self.lock:
            fresh = [(i, n) for n, i in enumerate(ids) if i not in self._row]
            if not fresh:
                return
            rows = np.asarray([n for _, n in fresh])
            new = np.ascontiguousarray(vectors[rows], dtype=np.float32)
            need = self._n + len(new)
            if need > len(self._vectors):
                cap = max(need, 2 * len(self._vectors), 64)
                grown = np.empty((cap, self.dimensions), dtype=np.float32)
                grown[: self._n] = self._vectors[: self._n]
                self._vectors = grown
                ids_grown = np.empty(cap, dtype=np.int64)
                ids_grown[: self._n] = self._ids[: self._n]
                self._ids = ids_grown
            self._vectors[self._n : need] = new
            new_ids = [i for i, _ in fresh]
            self._ids[self._n : need] = new_ids
            for pos, i in enumerate(new_ids, self._n):
                self._row[i] = pos
            self.max_id = max(self.max_id, *new_ids)
            self._n = need
            for graph in self._graphs.values():
                _graph_add(graph, new_ids, new)

    def remove(self, ids: Iterable[int]) -> None:
        """Remove vectors (unknown ids are ignored). The last row moves into the hole."""
        with self.lock:
            for i in ids:
                pos = self._row.pop(i, None)
                if pos is None:
                    continue
                last = self._n - 1
                if pos != last:
                    moved = int(self._ids[last])
                    self._vectors[pos] = self._vectors[last]
                    self._ids[pos] = moved
                    self._row[moved] = pos
                self._n = last
                for graph in self._graphs.values():
                    graph.mark_deleted(i)  # type: ignore[attr-defined]

    def vector(self, i: int) -> np.ndarray | None:
        with self.lock:
            pos = self._row.get(i)
            return None if pos is None else self._vectors[pos].copy()

    def search(
        self,
        query: np.ndarray,
        k: int,
        metric: str,
        *,
        approximate: bool,
        among: Sequence[int] | None = None,
    ) -> Hits:
        """The k nearest ids, best first, with their distances.

        `among` restricts the search to those ids (exact over them: the filter-first plan).
        `approximate` asks for the HNSW graph when the set is big enough to have one.
        """
        with self.lock:
            if among is not None:
                rows = np.asarray([self._row[i] for i in among if i in self._row], dtype=np.int64)
                if not len(rows):
                    return NO_HITS
                vecs, ids = self._vectors[rows], self._ids[rows]
                dist = distances(metric, vecs, query)
                return _ranked(ids, dist, rank(metric, dist, k))
            if approximate and self._n >= EXACT_BELOW:
                return self._search_graph(query, k, metric)
            return self._search_exact(query, k, metric)

    def _search_exact(self, query: np.ndarray, k: int, metric: str) -> Hits:
        vecs, ids = self._vectors[: self._n], self._ids[: self._n]
        if not len(vecs):
            return NO_HITS
        if metric == "L2" and self._n * self.dimensions > 4_000_000:
            # Big scans: rank by |v|^2 - 2 v.q (one BLAS product), then recompute the best
            # candidates exactly; the margin covers the expansion's rounding.
            rough = np.einsum("ij,ij->i", vecs, vecs) - 2 * (vecs @ query)
            take = min(len(rough), max(4 * k, k + 64))
            cand = (
                np.argpartition(rough, take - 1)[:take]
                if take < len(rough)
                else np.arange(len(rough))
            )
            scale = float(np.abs(rough[cand]).max()) + float(query @ query)
            bound = float(rough[cand].max())
            extra = np.flatnonzero(rough <= bound + 1e-4 * scale)
            cand = np.union1d(cand, extra)
            dist = distances(metric, vecs[cand], query)
            return _ranked(ids[cand], dist, rank(metric, dist, k))
        dist = distances(metric, vecs, query)
        return _ranked(ids, dist, rank(metric, dist, k))

    def _search_graph(self, query: np.ndarray, k: int, metric: str) -> Hits:
        graph = self._graphs.get(metric)
        if graph is None:
            graph = self._graphs[metric] = _build_graph(
                metric, self._ids[: self._n], self._vectors[: self._n]
            )
        k = min(k, self._n)
        graph.set_ef(max(HNSW_EF_SEARCH, k))  # type: ignore[attr-defined]
        try:
            labels, dist = graph.knn_query(query, k=k)  # type: ignore[attr-defined]
        except RuntimeError:
            # hnswlib found fewer than k live neighbours (many deletions cut the graph up):
            # answer exactly rather than fail.
            return self._search_exact(query, k, metric)
        # hnswlib's own float32 distances, best first: squared L2 as is, and 1 - dot product
        # (of the normalised vectors for cosine) for IP and CS.
        values = dist[0] if metric == "L2" else np.float32(1) - dist[0]
        return Hits(labels[0].tolist(), values.tolist())


def _save(vs: VectorSet, folder: Path) -> None:
    """Write the set's index as `folder` (a new directory, renamed into place by the caller)."""
    folder.mkdir(parents=True)
    with vs.lock:
        np.save(folder / "ids.npy", vs._ids[: vs._n])
        np.save(folder / "vectors.npy", vs._vectors[: vs._n])
        for metric, graph in vs._graphs.items():
            graph.save_index(str(folder / f"{metric}.hnsw"))  # type: ignore[attr-defined]
        meta = {
            "version": vs.version,
            "dimensions": vs.dimensions,
            "count": vs._n,
            "graphs": sorted(vs._graphs),
        }
    (folder / "meta.json").write_text(json.dumps(meta))


def _load(folder: Path, dimensions: int) -> VectorSet | None:
    import hnswlib

    try:
        meta = json.loads((folder / "meta.json").read_text())
        if meta["dimensions"] != dimensions:
            return None
        vs = VectorSet(dimensions, int(meta["version"]))
        ids = np.load(folder / "ids.npy")
        vectors = np.load(folder / "vectors.npy")
        if len(ids) != meta["count"] or vectors.shape != (len(ids), dimensions):
            return None
        vs._ids, vs._vectors, vs._n = ids.astype(np.int64), vectors, len(ids)
        vs._row = {int(i): n for n, i in enumerate(ids.tolist())}
        vs.max_id = int(ids.max()) if len(ids) else 0
        for metric in meta["graphs"]:
            graph = hnswlib.Index(space=_SPACES[metric], dim=dimensions)
            graph.load_index(str(folder / f"{metric}.hnsw"), max_elements=max(1024, 2 * len(ids)))
            graph.set_num_threads(1)
            vs._graphs[metric] = graph
        vs.saved_version = vs.version
        return vs
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        log.warning(
            "vector index in %s unreadable (%s); rebuilding it from the stored rows", folder, e
        )
        return None


def _build_graph(metric: str, ids: np.ndarray, vectors: np.ndarray) -> object:
    import hnswlib

    graph = hnswlib.Index(space=_SPACES[metric], dim=vectors.shape[1])
    graph.init_index(
        max_elements=max(1024, 2 * len(ids)), M=HNSW_M, ef_construction=HNSW_EF_CONSTRUCTION
    )
    graph.set_num_threads(1)
    if len(ids):
        graph.add_items(vectors, ids)
    return graph


def _graph_add(graph: object, ids: list[int], vectors: np.ndarray) -> None:
    need = graph.element_count + len(ids)  # type: ignore[attr-defined]
    if need > graph.get_max_elements():  # type: ignore[attr-defined]
        graph.resize_index(2 * need)  # type: ignore[attr-defined]
    graph.add_items(vectors, ids)  # type: ignore[attr-defined]


class VectorIndexes:
    """Every loaded set's index, keyed by the set's object id (a re-created name starts anew).

    With a `folder`, indexes are saved there on `save()` (the database's close) and read back
    on first use, so a big set opens without reading its vectors one blob at a time. A saved
    index records the set version it reflects; an older one is caught up from the rows, so a
    crash between a commit and the next save loses nothing. One directory per set and version,
    renamed into place, so processes saving the same set never mix their files.
    """

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder
        self._sets: dict[int, VectorSet] = {}
        # The caller's description of each set it searched, by name (opaque here): the engine
        # keeps what a k-NN query needs before its search, and confirms it with the hits.
        self.catalog: dict[str, Any] = {}
        self._lock = threading.Lock()

    def get(self, set_id: int) -> VectorSet | None:
        return self._sets.get(set_id)

    def loaded(self) -> list[int]:
        """The set ids of the loaded indexes."""
        return list(self._sets)

    def load(
        self,
        set_id: int,
        dimensions: int,
        version: int,
        rows: Callable[[], tuple[list[int], np.ndarray]],
        seq: int | None = None,
    ) -> VectorSet:
        """The set's index: loaded, read from its saved copy, or built from `rows()` (which
        reflect change-log entry `seq`, read in the same snapshot)."""
        with self._lock:
            vs = self._sets.get(set_id)
            if vs is None:
                vs = self._read(set_id, dimensions)
                if vs is None:
                    vs = VectorSet(dimensions, version)
                    ids, vectors = rows()
                    vs.add(ids, vectors)
                    vs.seq = seq
                self._sets[set_id] = vs
            return vs

    def _saved(self, set_id: int) -> list[tuple[int, Path]]:
        if self.folder is None or not self.folder.is_dir():
            return []
        out = []
        for p in self.folder.glob(f"{set_id}.v*"):
            try:
                out.append((int(p.name.split(".v", 1)[1]), p))
            except ValueError:
                continue
        return sorted(out)

    def _read(self, set_id: int, dimensions: int) -> VectorSet | None:
        saved = self._saved(set_id)
        return _load(saved[-1][1], dimensions) if saved else None

    def save(self) -> None:
        """Save every index changed since it was read or last saved."""
        if self.folder is None:
            return
        for set_id, vs in list(self._sets.items()):
            if vs.saved_version == vs.version:
                continue
            tmp = self.folder / f".{set_id}.tmp-{os.getpid()}-{threading.get_ident()}"
            try:
                shutil.rmtree(tmp, ignore_errors=True)
                version = vs.version
                _save(vs, tmp)
                final = self.folder / f"{set_id}.v{version}"
                if final.exists():
                    shutil.rmtree(tmp)
                else:
                    os.replace(tmp, final)
                vs.saved_version = version
                for v, old in self._saved(set_id):
                    if v < version:
                        shutil.rmtree(old, ignore_errors=True)
            except OSError as e:  # derived data: a failed save only costs a rebuild
                log.warning("could not save the vector index of set %s: %s", set_id, e)
                shutil.rmtree(tmp, ignore_errors=True)

    def unload(self, set_ids: Iterable[int]) -> None:
        """Forget loaded indexes (their saved copies stay)."""
        with self._lock:
            for i in set_ids:
                self._sets.pop(i, None)

    def drop(self, set_ids: Iterable[int]) -> None:
        with self._lock:
            for i in set_ids:
                self._sets.pop(i, None)
                for _, path in self._saved(i):
                    shutil.rmtree(path, ignore_errors=True)
