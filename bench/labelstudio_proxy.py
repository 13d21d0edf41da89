"""Images through Label Studio's resolve proxy (lensdb storage) vs. the same files from a plain static server.

Label Studio runs under gunicorn (a production WSGI server; pip install gunicorn) and, for reference,
its development server; the static files are served by Starlette's StaticFiles under uvicorn with the
same number of worker processes. A threaded client fetches random images for a fixed time.

Usage: python bench/labelstudio_proxy.py [--images 500] [--seconds 10] [--clients 8] [--workers 4]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

from labelstudio_common import TOKEN, free_port, load_images, stack
from lensdb.labelstudio import launcher


def static_app():
    """uvicorn factory: the folder in LENSDB_BENCH_STATIC as plain static files."""
    from starlette.applications import Starlette
    from starlette.routing import Mount
    from starlette.staticfiles import StaticFiles

    return Starlette(
        routes=[Mount("/", app=StaticFiles(directory=os.environ["LENSDB_BENCH_STATIC"]))]
    )


def hammer(
    urls: list[str], expected: dict[str, int], seconds: float, clients: int, headers: dict
) -> float:
    """Requests per second over `seconds` with `clients` threads; every answer's size is checked."""
    done = [0] * clients
    errors: list[str] = []
    stop_at = time.perf_counter() + seconds

    def worker(k: int) -> None:
        rnd = random.Random(k)
        with requests.Session() as http:
            http.headers.update(headers)
            while time.perf_counter() < stop_at:
                url = rnd.choice(urls)
                r = http.get(url, timeout=30)
                if r.status_code != 200 or len(r.content) != expected[url]:
                    errors.append(f"{url}: {r.status_code} {len(r.content)}")
                    return
                done[k] += 1

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(errors[0])
    return sum(done) / (time.perf_counter() - t0)


def wait(url: str, proc: subprocess.Popen) -> None:
    launcher.wait_http(url, proc, timeout=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--workers", type=int, default=4)
    args = ap.parse_args()
    files = Path(tempfile.mkdtemp(prefix="lensdb-ls-static-"))
    results = {}
    with stack() as s:
        data = load_images(s.connector(), args.images, tag="proxy", folder=files)
        p = s.project("proxy")
        sid = s.lensdb_storage(
            p, constraints=json.dumps({"tag": ["==", "proxy"]}), task_data_properties="name"
        )
        s.api("POST", f"/api/storages/lensdb/{sid}/sync")
        tasks = s.api("GET", f"/api/tasks/?project={p}&page_size={args.images}&fields=all").json()[
            "tasks"
        ]
        paths = {
            t["data"]["image"]: len((files / f"{t['data']['name']}.jpg").read_bytes())
            for t in tasks
        }
        assert len(paths) == len(data)
        auth = {"Authorization": f"Token {TOKEN}"}

        def proxy_rate(base: str) -> float:
            urls = {base + path: n for path, n in paths.items()}
            return hammer(list(urls), urls, args.seconds, args.clients, auth)

        results["Label Studio dev server (runserver)"] = proxy_rate(s.url)

        # Same Label Studio (same data dir and settings) under gunicorn.
        opts = launcher.LabelStudioOptions(data_dir=s.root / "labelstudio", lensdb_port=s.db_port)
        env = launcher.label_studio_env(opts)
        import label_studio

        port = free_port()
        log = open(s.root / "gunicorn.log", "ab")  # noqa: SIM115 - handed to the child
        gun = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--workers",
                str(args.workers),
                "--bind",
                f"127.0.0.1:{port}",
                "--pythonpath",
                str(Path(label_studio.__file__).parent),
                "core.wsgi:application",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait(f"http://127.0.0.1:{port}/health", gun)
            results[f"Label Studio under gunicorn ({args.workers} workers)"] = proxy_rate(
                f"http://127.0.0.1:{port}"
            )
            # Label Studio's floor: its cheapest endpoint, same server, same client.
            health = {
                f"http://127.0.0.1:{port}/health": len(
                    requests.get(f"http://127.0.0.1:{port}/health").content
                )
            }
            results["  (reference: Label Studio /health, same gunicorn)"] = hammer(
                list(health), health, args.seconds, args.clients, auth
            )
        finally:
            launcher.stop(gun)

    port = free_port()
    static = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "labelstudio_proxy:static_app",
            "--factory",
            "--app-dir",
            str(Path(__file__).parent),
            "--workers",
            str(args.workers),
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env={**os.environ, "LENSDB_BENCH_STATIC": str(files)},
    )
    try:
        first = next(iter(paths))
        name = next(t["data"]["name"] for t in tasks if t["data"]["image"] == first)
        wait(f"http://127.0.0.1:{port}/{name}.jpg", static)
        urls = {
            f"http://127.0.0.1:{port}/{t['data']['name']}.jpg": paths[t["data"]["image"]]
            for t in tasks
        }
        results[f"static files, Starlette on uvicorn ({args.workers} workers)"] = hammer(
            list(urls), urls, args.seconds, args.clients, {}
        )
    finally:
        launcher.stop(static)

    print(
        f"\n{args.images} small JPEGs, {args.clients} client threads, {args.seconds:g} s each, {os.cpu_count()} CPUs:"
    )
    for name, rate in results.items():
        print(f"  {name:52s} {rate:8.0f} requests/s")


if __name__ == "__main__":
    main()
