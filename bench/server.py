"""Server benchmarks: the official aperturedb SDK talking to a `lensdb serve` subprocess.

1. GetStatus round trip with the SDK Connector over TCP (plain and TLS): p50/p99 µs, against
   a raw asyncio server in another process that answers the hello and then replies to each
   frame with the very bytes lensdb sends for GetStatus (same client, same payloads).
2. ParallelLoader ingest (8 threads) of N small JPEGs, then 2 boxes per image: images/s, the
   median of several runs, each into an empty server; with ImageDataCSV as the SDK sets it up,
   and without its client-side image check (which decodes every image in the client, on the same
   2 cores as the server). Client and server CPU seconds are printed for each phase.
3. FindImage returning 100 blobs per query, 50 queries: MB/s over TCP vs reading the same
   files from disk.

Usage: python bench/server.py [--images 10000] [--roundtrips 3000] [--threads 8] [--batch 100]
                              [--ingest-runs 5]
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from PIL import Image

ADMIN_PASSWORD = "bench-password"

_ECHO_SERVER = textwrap.dedent(
    """
    import asyncio, struct, sys
    reply = bytes.fromhex(sys.argv[2])
    framed = struct.pack("<I", len(reply)) + reply

    async def handle(reader, writer):
        try:
            n = struct.unpack("<I", await reader.readexactly(4))[0]
            version, proto = struct.unpack("<II", await reader.readexactly(n))
            writer.write(struct.pack("<III", 8, 1, proto))
            while True:
                n = struct.unpack("<I", await reader.readexactly(4))[0]
                await reader.readexactly(n)
                writer.write(framed)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]))
        print("ready", flush=True)
        async with server:
            await server.serve_forever()

    asyncio.run(main())
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


def start_lensdb(data: Path, port: int, http_port: int) -> subprocess.Popen:
    env = {**os.environ, "LENSDB_ADMIN_PASSWORD": ADMIN_PASSWORD}
    cmd = [
        sys.executable,
        "-c",
        "from lensdb.cli import main; main()",
        "serve",
        "--data",
        str(data),
        "--port",
        str(port),
        "--http-port",
        str(http_port),
    ]
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=open(data.parent / "server.log", "wb")
    )
    wait_port(port, proc)
    wait_port(http_port, proc)
    return proc


def jpeg(seed: int, size: int) -> bytes:
    """A small JPEG with noise, so it weighs a few KB like a real thumbnail."""
    rnd = __import__("random").Random(seed)
    img = Image.frombytes("RGB", (size, size), rnd.randbytes(size * size * 3))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=75)
    return buf.getvalue()


def make_csvs(folder: Path, n: int, size: int) -> tuple[Path, Path, list[Path]]:
    img_dir = folder / "images"
    img_dir.mkdir(parents=True)
    files = []
    with open(folder / "images.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["filename", "id", "label", "split", "score", "constraint_id"])
        for i in range(n):
            p = img_dir / f"{i:06d}.jpg"
            p.write_bytes(jpeg(i, size))
            files.append(p)
            w.writerow(
                [str(p), i, ("cat", "dog", "bird")[i % 3], ("train", "val")[i % 2], i % 97, i]
            )
    with open(folder / "boxes.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            ["id", "x_pos", "y_pos", "width", "height", "_label", "box_id", "constraint_box_id"]
        )
        for i in range(n):
            for b in range(2):
                w.writerow([i, 2 + b, 3 + b, 10, 12, ("cat", "dog")[b], 2 * i + b, 2 * i + b])
    return folder / "images.csv", folder / "boxes.csv", files


def percentiles(samples: list[float]) -> tuple[float, float]:
    s = sorted(samples)
    return statistics.median(s) * 1e6, s[min(len(s) - 1, int(len(s) * 0.99))] * 1e6


def time_queries(client, n: int) -> list[float]:
    q = [{"GetStatus": {}}]
    for _ in range(200):  # warm up (connect, authenticate, caches)
        client.query(q)
    out = []
    for _ in range(n):
        t = time.perf_counter()
        client.query(q)
        out.append(time.perf_counter() - t)
    return out


def bench_roundtrip(port: int, ca: str, n: int) -> None:
    from aperturedb import queryMessage
    from aperturedb.Connector import Connector

    print(f"\n[1] GetStatus round trip, SDK Connector, {n} queries")
    results = {}
    for label, kw in (("plain TCP", {"use_ssl": False}), ("TLS", {"use_ssl": True, "ca_cert": ca})):
        client = Connector(host="localhost", port=port, user="admin", password=ADMIN_PASSWORD, **kw)
        results[label] = percentiles(time_queries(client, n))
        client.close()
    # The exact bytes lensdb answers GetStatus with, for the echo server to send back.
    probe = Connector(
        host="localhost", port=port, user="admin", password=ADMIN_PASSWORD, use_ssl=False
    )
    response, _ = probe.query([{"GetStatus": {}}])
    msg = queryMessage.queryMessage()
    msg.json = __import__("json").dumps(response)
    reply = msg.SerializeToString()
    probe.close()

    echo_port = free_port()
    echo = subprocess.Popen(
        [sys.executable, "-c", _ECHO_SERVER, str(echo_port), reply.hex()], stdout=subprocess.PIPE
    )
    try:
        echo.stdout.readline()
        client = Connector(host="localhost", port=echo_port, use_ssl=False, authenticate=False)
        results["asyncio echo, plain TCP"] = percentiles(time_queries(client, n))
        client.close()
    finally:
        echo.send_signal(signal.SIGTERM)
        echo.wait()
    for label, (p50, p99) in results.items():
        print(f"    {label:<26} p50 {p50:8.1f} µs   p99 {p99:8.1f} µs")
    lp50 = results["plain TCP"][0]
    ep50 = results["asyncio echo, plain TCP"][0]
    print(
        f"    lensdb plain TCP p50 is {lp50 / ep50:.2f}x the echo server's ({lp50 - ep50:.0f} µs of server work)"
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_ingest(
    server: subprocess.Popen,
    port: int,
    images_csv: Path,
    boxes_csv: Path,
    n: int,
    threads: int,
    batch: int,
    check_image: bool,
) -> float:
    """One ParallelLoader run into an empty database: images per second, boxes included."""
    from aperturedb.BBoxDataCSV import BBoxDataCSV
    from aperturedb.Connector import Connector
    from aperturedb.ImageDataCSV import ImageDataCSV
    from aperturedb.ParallelLoader import ParallelLoader

    client = Connector(
        host="localhost", port=port, user="admin", password=ADMIN_PASSWORD, use_ssl=False
    )
    times = {}
    cpu = {}
    for label, data in (
        ("images", ImageDataCSV(str(images_csv), check_image=check_image)),
        ("boxes", BBoxDataCSV(str(boxes_csv))),
    ):
        client_cpu, server_cpu = time.process_time(), cpu_seconds(server.pid)
        loader = ParallelLoader(client)
        t = time.perf_counter()
        loader.ingest(data, batchsize=batch, numthreads=threads, stats=False)
        times[label] = time.perf_counter() - t
        cpu[label] = (time.process_time() - client_cpu, cpu_seconds(server.pid) - server_cpu)
        if loader.error_counter:
            print(f"    !! {loader.error_counter} failed queries while loading {label}")
    total = times["images"] + times["boxes"]
    sys.stderr.flush()
    print(
        f"\n    {n / total:5.0f} images/s with their boxes;"
        f" images {times['images']:.2f} s (CPU: client {cpu['images'][0]:.2f} s, server {cpu['images'][1]:.2f} s),"
        f" boxes {times['boxes']:.2f} s (CPU: client {cpu['boxes'][0]:.2f} s, server {cpu['boxes'][1]:.2f} s)"
    )
    client.close()
    return n / total


def bench_find(
    port: int, ca: str, files: list[Path], queries: int = 50, per_query: int = 100
) -> None:
    from aperturedb.Connector import Connector

    print(f"\n[3] FindImage returning {per_query} blobs per query, {queries} queries")
    spans = [(k * per_query) % (len(files) - per_query) for k in range(queries)]
    for label, kw in (("plain TCP", {"use_ssl": False}), ("TLS", {"use_ssl": True, "ca_cert": ca})):
        client = Connector(host="localhost", port=port, user="admin", password=ADMIN_PASSWORD, **kw)
        client.query([{"GetStatus": {}}])
        got = 0
        t = time.perf_counter()
        for lo in spans:
            r, blobs = client.query(
                [
                    {
                        "FindImage": {
                            "constraints": {"id": [">=", lo, "<", lo + per_query]},
                            "blobs": True,
                        }
                    }
                ]
            )
            assert len(blobs) == per_query, r
            got += sum(map(len, blobs))
        dt = time.perf_counter() - t
        print(
            f"    {label:<10} {got / dt / 2**20:8.1f} MB/s  ({got / 2**20:.1f} MB in {dt:.2f} s,"
            f" {dt / queries * 1000:.1f} ms/query)"
        )
        client.close()
    got = 0
    t = time.perf_counter()
    for lo in spans:
        for p in files[lo : lo + per_query]:
            got += len(p.read_bytes())
    dt = time.perf_counter() - t
    print(
        f"    {'disk':<10} {got / dt / 2**20:8.1f} MB/s  (same files, open+read each, page cache warm)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--images", type=int, default=10_000)
    ap.add_argument("--image-size", type=int, default=64, help="JPEG width and height, pixels")
    ap.add_argument("--roundtrips", type=int, default=3000)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--batch", type=int, default=100, help="ParallelLoader batchsize")
    ap.add_argument(
        "--ingest-runs",
        type=int,
        default=5,
        help="ParallelLoader runs each way (with and without the client's image check), "
        "each into an empty server",
    )
    args = ap.parse_args()

    import logging

    logging.getLogger("aperturedb").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="lensdb-bench-") as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        images_csv, boxes_csv, files = make_csvs(root / "dataset", args.images, args.image_size)
        avg = sum(p.stat().st_size for p in files[:200]) / min(200, len(files))
        print(
            f"generated {args.images} JPEGs ({args.image_size}px, ~{avg / 1024:.1f} KB each) "
            f"in {time.perf_counter() - t:.1f} s; cores: {os.cpu_count()}"
        )
        os.sync()  # the dataset's own writeback must not land inside the measured runs
        port, http_port = free_port(), free_port()
        server = start_lensdb(root / "data", port, http_port)
        ca = str(root / "data" / "tls" / "ca.crt")
        try:
            bench_roundtrip(port, ca, args.roundtrips)
            print(
                f"\n[2] ParallelLoader ingest, {args.images} JPEGs + {2 * args.images} boxes, "
                f"{args.threads} threads, batch {args.batch}, plain TCP, {args.ingest_runs} runs "
                "each way (ParallelLoader polls its threads once a second, so a phase takes whole "
                "seconds; client and server share the 2 cores)"
            )
            print(
                "    ImageDataCSV as the SDK sets it up (check_image: the client decodes every "
                "image with OpenCV before sending it)"
            )
            rates = {
                True: [
                    bench_ingest(
                        server,
                        port,
                        images_csv,
                        boxes_csv,
                        args.images,
                        args.threads,
                        args.batch,
                        check_image=True,
                    )
                ]
            }
            bench_find(port, ca, files)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(60)
        for check in (True, False):
            if not check:
                print("\n    ImageDataCSV(check_image=False): no decoding in the client")
            rates.setdefault(check, [])
            while len(rates[check]) < args.ingest_runs:  # each into a fresh server and folder
                data = root / f"data-{check}-{len(rates[check])}"
                server = start_lensdb(data, port, http_port)
                try:
                    rates[check].append(
                        bench_ingest(
                            server,
                            port,
                            images_csv,
                            boxes_csv,
                            args.images,
                            args.threads,
                            args.batch,
                            check_image=check,
                        )
                    )
                finally:
                    server.send_signal(signal.SIGTERM)
                    server.wait(60)
                shutil.rmtree(data)
        for check, label in ((True, "SDK defaults"), (False, "check_image=False")):
            print(
                f"\n    ParallelLoader, {label}: median {statistics.median(rates[check]):.0f} images/s "
                f"with their boxes over {len(rates[check])} runs "
                f"({', '.join(f'{r:.0f}' for r in rates[check])}); target >= 1500"
            )


if __name__ == "__main__":
    main()
