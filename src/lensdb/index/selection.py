"""Choosing what to label from embeddings: most diverse first, near-duplicates skipped,
nearest to examples. Pure functions over a float32 matrix (one row per image)."""

from __future__ import annotations

import numpy as np

from lensdb.index import distances


def dissimilarity(metric: str, vectors: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Larger = farther apart: squared L2 for L2 sets, 1 - cosine for CS and IP sets (a dot
    product is no distance, so IP sets are compared by angle)."""
    if metric == "L2":
        return distances("L2", vectors, v)
    return np.float32(1) - distances("CS", vectors, v)


def diverse(vectors: np.ndarray, n: int, metric: str = "L2", first: int = 0) -> list[int]:
    """k-center greedy: start at `first`, then repeatedly take the row farthest from every row
    taken so far. The order is the order to label in: each pick covers the most new ground.
    O(n x rows), one vector pass per pick."""
    if not len(vectors) or n <= 0:
        return []
    picked = [first]
    nearest = dissimilarity(metric, vectors, vectors[first])
    nearest[first] = -np.inf
    while len(picked) < min(n, len(vectors)):
        nxt = int(np.argmax(nearest))
        if nearest[nxt] == -np.inf:
            break
        picked.append(nxt)
        nearest = np.minimum(nearest, dissimilarity(metric, vectors, vectors[nxt]))
        nearest[picked] = -np.inf
    return picked


def dedup(
    vectors: np.ndarray, threshold: float, metric: str = "L2"
) -> tuple[list[int], dict[int, int]]:
    """Rows in order, skipping any within `threshold` (dissimilarity) of a row already kept.
    Returns the kept rows and, for each skipped row, the kept row it duplicates."""
    kept: list[int] = []
    dup_of: dict[int, int] = {}
    for i in range(len(vectors)):
        if kept:
            d = dissimilarity(metric, vectors[kept], vectors[i])
            j = int(np.argmin(d))
            if d[j] <= threshold:
                dup_of[i] = kept[j]
                continue
        kept.append(i)
    return kept, dup_of


def similar(vectors: np.ndarray, examples: np.ndarray, n: int, metric: str = "L2") -> list[int]:
    """The n rows nearest to any of the examples (by their best example), nearest first."""
    if not len(vectors) or not len(examples) or n <= 0:
        return []
    best = np.min(np.stack([dissimilarity(metric, vectors, e) for e in examples]), axis=0)
    return [int(i) for i in np.argsort(best, kind="stable")[:n]]


def disagreements(
    vectors: np.ndarray,
    labels: list[str | None],
    k: int = 5,
    metric: str = "L2",
    share: float = 0.5,
) -> list[tuple[int, str, float]]:
    """Labelled rows whose k nearest labelled neighbours mostly (more than `share`) carry one
    other label: (row, that label, its share), most confident first. Candidates for review.
    Exact, O(n^2) distance evaluations in blocks: meant for the labelled part of a project."""
    idx = [i for i, lab in enumerate(labels) if lab is not None]
    if len(idx) < 2:
        return []
    sub = vectors[idx]
    out: list[tuple[int, str, float]] = []
    for a, i in enumerate(idx):
        d = dissimilarity(metric, sub, sub[a])
        d[a] = np.inf
        near = np.argsort(d, kind="stable")[:k]
        votes: dict[str, int] = {}
        for j in near:
            lab = labels[idx[j]]
            assert lab is not None
            votes[lab] = votes.get(lab, 0) + 1
        top, n = max(votes.items(), key=lambda kv: kv[1])
        if top != labels[i] and n / len(near) > share:
            out.append((i, top, n / len(near)))
    return sorted(out, key=lambda t: -t[2])
