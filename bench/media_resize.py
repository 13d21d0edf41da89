"""Throughput of JPEG decode + resize to 224x224 + encode: plain Pillow vs lensdb's render.

Run: /work/venv/bin/python bench/media_resize.py [--count 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from io import BytesIO

import numpy as np
from PIL import Image

from lensdb.media.images import render

SIZE = (640, 480)
TARGET = (224, 224)


def make_jpegs(count: int, seed: int = 0) -> list[bytes]:
    """Gradient plus noise, so files compress like photos rather than flat colour."""
    rng = np.random.default_rng(seed)
    w, h = SIZE
    ys, xs = np.mgrid[0:h, 0:w]
    out = []
    for i in range(count):
        base = np.stack([xs * 255 / w, ys * 255 / h, (xs + ys + 7 * i) % 256], axis=-1)
        noisy = base + rng.normal(0, 20, size=base.shape)
        buf = BytesIO()
        Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB").save(
            buf, "JPEG", quality=90
        )
        out.append(buf.getvalue())
    return out


def plain(data: bytes) -> bytes:
    img = Image.open(BytesIO(data)).convert("RGB").resize(TARGET)
    buf = BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def lensdb(data: bytes) -> bytes:
    return render(data, [{"type": "resize", "width": TARGET[0], "height": TARGET[1]}])


def rate(fn: Callable[[bytes], bytes], images: list[bytes], rounds: int) -> float:
    """Best-of-rounds images per second, to keep scheduler noise out."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for data in images:
            fn(data)
        best = min(best, time.perf_counter() - start)
    return len(images) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    images = make_jpegs(args.count)
    mean_kb = sum(map(len, images)) / len(images) / 1024
    print(f"{len(images)} JPEGs {SIZE[0]}x{SIZE[1]}, mean {mean_kb:.0f} KiB")
    a = rate(plain, images, args.rounds)
    b = rate(lensdb, images, args.rounds)
    print(f"(a) Pillow open+convert+resize+encode: {a:8.1f} images/s")
    print(f"(b) lensdb render resize 224x224:      {b:8.1f} images/s")
    print(f"ratio b/a: {b / a:.2f}")


if __name__ == "__main__":
    main()
