"""The browse page over many images: server time of the first page, a deep page and filtered
pages, against the raw SQLite reads of the same rows in the same run.

    python bench/browse.py [--images 1000000] [--repeat 30] [--data DIR]

1. Generation: N tiny PNGs (12x9, a few distinct colours) with a `dataset` property (10 datasets),
   a predicted box on every 10th image (5 labels: 2 % of images each), a "unicorn" box on every
   10,000th (a rare label) and a human annotation (an LS_annotation entity and a box carrying
   LS_annotation) on every 100th, written through the embedded `Database` in
   transactions of `--batch` images (images/s printed). `--data DIR` keeps the folder and reuses it
   when it already holds the images.
2. `lensdb serve` on that folder; a logged-in session (POST /browse/login) asks for pages of 48:
   the first page, a page near the end (keyset: `after` = a uniqueid at 99%), and the first page
   filtered by dataset, by a common and a rare label (without, then with, an index on `_label`),
   by annotated or not, and by a constraint on an unindexed property (a scan of every image). Reported: the page's `Server-Timing`
   (handler start to HTML built: query, permission check, rendering) and the client's wall time,
   p50 and p95 over `--repeat` requests.
3. Baseline, same run: raw SQLite (the server's own file, read-only) reading the same 49 image
   rows and their boxes by keyset, and the OFFSET form of the deep page, which the page avoids.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import re
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("bench_server", HERE / "server.py")
bs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bs)  # type: ignore[union-attr]

LABELS = ["cat", "dog", "car", "tree", "person"]
PAGE = 48


def tiny_pngs() -> list[bytes]:
    from PIL import Image

    out = []
    for k in range(8):
        buf = io.BytesIO()
        Image.new("RGB", (12, 9), (30 * k, 255 - 30 * k, 90)).save(buf, "PNG")
        out.append(buf.getvalue())
    return out


def generate(data: Path, n: int, batch: int) -> tuple[float, int]:
    """Write n images (and their boxes) through the embedded Database; (seconds, images)."""
    from lensdb import Database

    pngs = tiny_pngs()
    started = time.perf_counter()
    with Database(data) as db:
        done = 0
        while done < n:
            q: list[dict] = []
            blobs: list[bytes] = []
            ref = 0
            for i in range(done, min(n, done + batch)):
                props = {"dataset": f"ds{i % 10}", "name": f"img{i}"}
                blobs.append(pngs[i % len(pngs)])
                if i % 10:
                    q.append({"AddImage": {"properties": props}})
                    continue
                # A predicted box on every 10th image; every 100th also a human annotation.
                ref += 1
                q.append({"AddImage": {"_ref": ref, "properties": props}})
                label = LABELS[(i // 10) % len(LABELS)]
                box = {"x": 1, "y": 1, "width": 6, "height": 4}
                q.append(
                    {
                        "AddBoundingBox": {
                            "image_ref": ref,
                            "rectangle": box,
                            "label": label,
                            "properties": {"score": 0.5},
                        }
                    }
                )
                if i % 10_000 == 0:  # a rare label: 100 boxes among 1M images
                    rare = {"x": 3, "y": 3, "width": 4, "height": 4}
                    q.append(
                        {
                            "AddBoundingBox": {
                                "image_ref": ref,
                                "rectangle": rare,
                                "label": "unicorn",
                            }
                        }
                    )
                if i % 100 == 0:
                    q.append(
                        {
                            "AddEntity": {
                                "class": "LS_annotation",
                                "properties": {"LS_id": str(i), "LS_completed_by": "bench"},
                                "connect": {"ref": ref, "class": "LS_annotation_image"},
                            }
                        }
                    )
                    q.append(
                        {
                            "AddBoundingBox": {
                                "image_ref": ref,
                                "rectangle": {"x": 2, "y": 2, "width": 5, "height": 5},
                                "label": "cat",
                                "properties": {"LS_annotation": str(i)},
                            }
                        }
                    )
            response, _ = db.query(q, blobs)
            if not isinstance(response, list):
                raise SystemExit(f"generation failed: {response}")
            done = min(n, done + batch)
            rate = done / (time.perf_counter() - started)
            print(f"\r  generated {done:,} images ({rate:,.0f}/s)", end="", flush=True)
    print()
    return time.perf_counter() - started, n


def stored_images(data: Path) -> int:
    path = data / "lensdb.sqlite3"
    if not path.exists():
        return 0
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT count(*) FROM objects WHERE class = '_Image'").fetchone()[0]


def pct(samples: list[float]) -> tuple[float, float]:
    s = sorted(samples)
    return statistics.median(s), s[min(len(s) - 1, int(len(s) * 0.95))]


def measure(client, path: str, params: dict, repeat: int) -> tuple[list, list, int]:
    """Server-Timing and wall milliseconds of `repeat` requests, and the images shown."""
    server, wall, shown = [], [], 0
    for k in range(repeat + 2):
        t = time.perf_counter()
        r = client.get(path, params=params)
        elapsed = (time.perf_counter() - t) * 1000
        if r.status_code != 200:
            raise SystemExit(f"{path} {params}: HTTP {r.status_code}: {r.text[:500]}")
        if k < 2:
            continue  # warm-up
        server.append(float(re.search(r"app;dur=([\d.]+)", r.headers["server-timing"]).group(1)))
        wall.append(elapsed)
        shown = len(re.findall(r'class="card"', r.text))
    return server, wall, shown


def api(client, commands: list[dict], token: str | None = None) -> list:
    """Run commands through the server's REST endpoint (JSON body); the answer's `json`."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = client.post("/api/", json=commands, headers=headers)
    return r.json()["json"]


def label_indexes(client, token: str, create: bool) -> None:
    """Index (or stop indexing) the `_label` of boxes and polygons (CreateIndex / RemoveIndex)."""
    verb = "CreateIndex" if create else "RemoveIndex"
    for cls in ("_BoundingBox", "_Polygon"):
        api(
            client,
            [{verb: {"index_type": "entity", "class": cls, "property_key": "_label"}}],
            token,
        )


def raw_page(conn: sqlite3.Connection, after: int, repeat: int) -> list[float]:
    """The same rows straight from SQLite: 49 images after `after`, and their boxes."""
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        rows = conn.execute(
            "SELECT id, props FROM objects WHERE class = '_Image' AND id > ? ORDER BY id LIMIT ?",
            (after, PAGE + 1),
        ).fetchall()
        ids = [r[0] for r in rows]
        marks = ",".join("?" * len(ids))
        conn.execute(
            "SELECT c.dst, o.props FROM connections c JOIN objects o ON o.id = c.src "
            f"WHERE c.dst IN ({marks}) AND c.class = '_BoundingBoxToImage'",
            ids,
        ).fetchall()
        out.append((time.perf_counter() - t) * 1000)
    return out


def raw_offset(conn: sqlite3.Connection, offset: int, repeat: int) -> list[float]:
    out = []
    for _ in range(max(3, repeat // 5)):
        t = time.perf_counter()
        conn.execute(
            "SELECT id, props FROM objects WHERE class = '_Image' ORDER BY id LIMIT ? OFFSET ?",
            (PAGE + 1, offset),
        ).fetchall()
        out.append((time.perf_counter() - t) * 1000)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--images", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=10_000, help="images per transaction")
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--data", type=Path, help="keep (and reuse) the data folder here")
    args = ap.parse_args()
    import httpx

    tmp = None
    if args.data is None:
        tmp = Path(tempfile.mkdtemp(prefix="lensdb-browse-bench-"))
        data = tmp / "data"
    else:
        data = args.data
    proc = None
    try:
        have = stored_images(data)
        if have and have != args.images:
            raise SystemExit(
                f"{data} holds {have:,} images, not {args.images:,}: use another --data"
            )
        if not have:
            print(f"generating {args.images:,} images in transactions of {args.batch:,} ...")
            seconds, n = generate(data, args.images, args.batch)
            print(f"generation: {n:,} images in {seconds:.1f} s = {n / seconds:,.0f} images/s")
        else:
            print(f"reusing {data} ({have:,} images)")
        port, http_port = bs.free_port(), bs.free_port()
        proc = bs.start_lensdb(data, port, http_port)
        base = f"http://127.0.0.1:{http_port}"
        with httpx.Client(base_url=base, timeout=120) as client:
            r = client.post(
                "/browse/login", data={"username": "admin", "password": bs.ADMIN_PASSWORD}
            )
            if r.status_code != 303:
                raise SystemExit(f"login failed: {r.status_code} {r.text[:300]}")
            conn = sqlite3.connect(f"file:{data / 'lensdb.sqlite3'}?mode=ro", uri=True)
            ids = [
                row[0]
                for row in conn.execute(
                    "SELECT id FROM objects WHERE class = '_Image' ORDER BY id LIMIT 1 OFFSET ?",
                    (int(args.images * 0.99),),
                )
            ]
            deep = ids[0]
            cases = [
                ("first page", {}),
                ("deep page (99%)", {"after": f"2.0.{deep}"}),
                ("dataset = ds3", {"dataset": "ds3"}),
                ("label common", {"label": "person"}),
                ("label rare", {"label": "unicorn"}),
                ("annotated: yes", {"annotated": "yes"}),
                ("annotated: no", {"annotated": "no"}),
                ("constraints name", {"constraints": '{"name": ["==", "img500"]}'}),
            ]
            print(
                f"\n{args.images:,} images; pages of {PAGE}; {args.repeat} requests each "
                "(milliseconds)"
            )
            print(f"{'page':<22}{'shown':>6}{'server p50':>12}{'p95':>8}{'wall p50':>10}")
            auth = api(
                client,
                [{"Authenticate": {"username": "admin", "password": bs.ADMIN_PASSWORD}}],
            )
            token = auth[0]["Authenticate"]["session_token"]
            label_indexes(client, token, create=False)  # as generated: no index on labels
            results = {}
            for name, params in cases:
                server, wall, shown = measure(
                    client, "/browse", {**params, "limit": PAGE}, args.repeat
                )
                p50, p95 = pct(server)
                results[name] = p50
                print(f"{name:<22}{shown:>6}{p50:>12.1f}{p95:>8.1f}{pct(wall)[0]:>10.1f}")
            t = time.perf_counter()
            label_indexes(client, token, create=True)
            print(
                f"  (CreateIndex on _label of boxes and polygons: {time.perf_counter() - t:.1f} s)"
            )
            indexed = [
                ("label common, index", {"label": "person"}),
                ("label rare, index", {"label": "unicorn"}),
            ]
            for name, params in indexed:
                server, wall, shown = measure(
                    client, "/browse", {**params, "limit": PAGE}, args.repeat
                )
                p50, p95 = pct(server)
                print(f"{name:<22}{shown:>6}{p50:>12.1f}{p95:>8.1f}{pct(wall)[0]:>10.1f}")
            label_indexes(client, token, create=False)
            first = client.get("/browse", params={"limit": PAGE}).text
            uid = re.search(r'data-uniqueid="([^"]+)"', first).group(1)
            t_wall = []
            for _ in range(args.repeat):
                t = time.perf_counter()
                r = client.get(f"/browse/thumb/{uid}", params={"width": 8})
                t_wall.append((time.perf_counter() - t) * 1000)
                assert r.status_code == 200
            print(f"{'thumbnail (resize)':<22}{'':>6}{'':>12}{'':>8}{pct(t_wall)[0]:>10.1f}")

            raw_first = pct(raw_page(conn, 0, args.repeat))[0]
            raw_deep = pct(raw_page(conn, deep, args.repeat))[0]
            offset = pct(raw_offset(conn, int(args.images * 0.99), args.repeat))[0]
            conn.close()
            print("\nbaseline, same run: raw SQLite, same rows (49 images + their boxes)")
            print(f"  first page keyset   {raw_first:8.2f} ms")
            print(f"  deep page keyset    {raw_deep:8.2f} ms")
            print(f"  deep page OFFSET    {offset:8.2f} ms   (what offset paging would cost)")
            print(
                f"\nfirst page: server {results['first page']:.1f} ms p50 "
                f"(target <= 200 ms: {'met' if results['first page'] <= 200 else 'NOT met'}); "
                f"{results['first page'] / max(raw_first, 1e-3):.0f}x the raw SQLite read"
            )
            print(
                f"deep page: server {results['deep page (99%)']:.1f} ms p50 = "
                f"{results['deep page (99%)'] / results['first page']:.2f}x the first page"
            )
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
