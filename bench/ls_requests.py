"""Label Studio request latency: the connector's transport (answers acknowledged at once,
`lensdb.connector.transport`) against httpx's own, on the same Label Studio, in one run.

`label-studio start` (Django's runserver) writes an answer in several small pieces with Nagle's
algorithm on, so a client that delays its acknowledgements (Linux: up to 40 ms) waits that long
on every request. For each kind of request a full pull makes, prints the wall time per request
with both transports, Label Studio's CPU per request (from /proc), and the ratio.

    python bench/ls_requests.py [--requests 30]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from lensdb.connector.lsclient import LabelStudio

sys.path.insert(0, str(Path(__file__).resolve().parent))
import connector as C  # noqa: E402 - the bench's Label Studio starter and CPU reader


def per_request(ls_pid: int, n: int, fn: Callable[[int], object]) -> tuple[float, float]:
    """Milliseconds of wall time and of Label Studio's CPU per call of `fn`."""
    cpu, t = C.cpu_seconds(ls_pid), time.perf_counter()
    for i in range(n):
        fn(i)
    return (time.perf_counter() - t) / n * 1000, (C.cpu_seconds(ls_pid) - cpu) / n * 1000


def kinds(ls: LabelStudio, pid: int) -> dict[str, Callable[[int], object]]:
    reader = ls.snapshot_reader(pid)
    made: list = []
    return {
        "read the project": lambda i: ls.project(pid),
        "list one task": lambda i: ls._task_times(pid, [], "tasks:id", 1, 1),
        "move the view": lambda i: reader._move_view(i * 10 + 1, i * 10 + 100, "bench"),
        "snapshot of 100 tasks": lambda i: made.append(reader._make({"view": reader.view}, "b")),
        "download it": lambda i: reader._download(made[i]),
        "delete it": lambda i: reader._forget(made[i]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--requests", type=int, default=30, help="requests of each kind")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="lensdb-bench-ls-requests-"))
    s = C.Servers(root)
    try:
        s.start_label_studio()
        setup = LabelStudio(s.ls_url, C.LS_TOKEN)
        pid = setup.create_project("request latency", C.CONFIG)["id"]
        setup.import_tasks(pid, [{"data": {"image": f"http://x/{i}.jpg"}} for i in range(2000)])
        results: dict[str, dict[str, tuple[float, float]]] = {}
        # A first pass, not counted, warms Label Studio up (its first snapshot costs it more).
        for name in ("warm-up", "httpx", "quick ack"):
            ls = LabelStudio(s.ls_url, C.LS_TOKEN)
            if name == "httpx":
                ls.http.close()
                ls.http = httpx.Client(base_url=ls.url, timeout=600.0)
            for kind, fn in kinds(ls, pid).items():
                results.setdefault(kind, {})[name] = per_request(s.ls_proc.pid, args.requests, fn)
            ls.close()
        print(f"{'request':24s} {'httpx ms':>9s} {'(LS CPU)':>9s} {'quick ack ms':>13s} "
              f"{'(LS CPU)':>9s}  ratio")  # fmt: skip
        for kind, r in results.items():
            (slow, slow_cpu), (fast, fast_cpu) = r["httpx"], r["quick ack"]
            print(
                f"{kind:24s} {slow:9.1f} {slow_cpu:9.1f} {fast:13.1f} {fast_cpu:9.1f}  "
                f"{fast / slow:.2f}x"
            )
    finally:
        s.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
