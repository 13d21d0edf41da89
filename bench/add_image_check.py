"""What checking that an added image decodes to its end costs (media.probe_complete).

Baselines in the same run: the header-only probe AddImage did before, a full decode, and a
whole AddImage query (in-process, stored to a temporary folder) with the check.

Run: .venv/bin/python bench/add_image_check.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from io import BytesIO

import numpy as np
from PIL import Image

from lensdb import Database
from lensdb.media import probe, probe_complete

SIZES = [(64, 64), (640, 480), (1920, 1080), (4000, 3000)]


def photo_like(w: int, h: int, fmt: str = "JPEG") -> bytes:
    rng = np.random.default_rng(w * h)
    ys, xs = np.mgrid[0:h, 0:w]
    base = np.stack([xs * 255 / w, ys * 255 / h, (xs + ys) % 256], axis=-1)
    pixels = np.clip(base + rng.normal(0, 20, size=base.shape), 0, 255).astype(np.uint8)
    buf = BytesIO()
    Image.fromarray(pixels, "RGB").save(buf, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buf.getvalue()


def per_call(fn: Callable[[], object], rounds: int) -> float:
    """Best of `rounds` timings of enough calls to last ~0.2 s; seconds per call."""
    n, t = 1, 0.0
    while t < 0.2:
        start = time.perf_counter()
        for _ in range(n):
            fn()
        t = time.perf_counter() - start
        n *= 2
    n //= 2
    best = t / n
    for _ in range(rounds - 1):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - start) / n)
    return best


def full_decode(data: bytes) -> None:
    Image.open(BytesIO(data)).load()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    print(
        f"{'image':>16} {'bytes':>9} {'header':>9} {'check':>9} {'full':>9} {'AddImage':>9}  "
        f"{'check/full':>10} {'check/AddImage':>14}"
    )
    with tempfile.TemporaryDirectory() as folder, Database(folder) as db:
        for fmt in ("JPEG", "PNG"):
            for w, h in SIZES:
                if fmt == "PNG" and w * h > 2_100_000:
                    continue
                data = photo_like(w, h, fmt)
                header = per_call(lambda d=data: probe(d), args.rounds)
                check = per_call(lambda d=data: probe_complete(d), args.rounds)
                full = per_call(lambda d=data: full_decode(d), args.rounds)
                add = per_call(
                    lambda d=data: db.query([{"AddImage": {}}], [d]), min(args.rounds, 2)
                )
                print(
                    f"{fmt + f' {w}x{h}':>16} {len(data):>9,} {header * 1e3:>8.3f}m {check * 1e3:>8.3f}m "
                    f"{full * 1e3:>8.3f}m {add * 1e3:>8.3f}m  {check / full:>10.2f} {check / add:>14.2f}"
                )
    print("(times in ms per image; check = probe_complete, AddImage includes the check)")


if __name__ == "__main__":
    main()
