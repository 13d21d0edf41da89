"""Connector and gateway benchmarks, each against Label Studio's or nginx's own way in the same run.

1. push: 10,000 images with a predicted box each -> tasks (connector push, batches of 500) vs
   Label Studio's own JSON import of the same task file.
2. pull: 10,000 annotated tasks -> lensdb, full vs incremental after 100 changed annotations,
   vs Label Studio's own full JSON export.
3. gateway: requests/s for ~10 KB JPEGs over keep-alive connections (wrk, signed links, rotating
   over 1,000 images) vs nginx serving the same files from disk.

Everything runs on loopback; wrk runs are bounded in time. Needs Label Studio importable (or
LENSDB_BENCH_LS_PYTHON), and the Debian packages nginx and wrk for part 3.

Usage: python bench/connector.py [--tasks 10000] [--changes 100] [--seconds 10] [--only push,pull,gateway]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from PIL import Image

from lensdb.client import Client, ConnectionSettings, HttpClient, TcpClient
from lensdb.connector.lsclient import LabelStudio
from lensdb.connector.pull import SETTLED, pull
from lensdb.connector.push import PushOptions, push
from lensdb.labelstudio.launcher import QUIET_ENV, stop, wait_http

CONFIG = """<View><Image name="image" value="$image"/>
<RectangleLabels name="label" toName="image"><Label value="Cat"/><Label value="Dog"/></RectangleLabels>
<Choices name="quality" toName="image"><Choice value="good"/><Choice value="bad"/></Choices></View>"""
PASSWORD = "bench-password"
LS_TOKEN = "bench-token-123456"
WARM_UP_TASKS = 300  # tasks of the project a full pull warms up on (see bench_pull)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def jpeg_near(target: int, seed: int) -> bytes:
    """A noisy JPEG of about `target` bytes."""
    rnd = random.Random(seed)
    side = 96
    while True:
        img = Image.effect_noise((side, side * 3 // 4), 40).convert("RGB")
        img.paste((rnd.randrange(256), 90, 160), (0, 0, side // 3, side // 4))
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=80)
        if buf.tell() >= target:
            return buf.getvalue()
        side += 8


def timed(fn, *args, **kw):  # noqa: ANN001, ANN201 - any callable
    t0 = time.perf_counter()
    result = fn(*args, **kw)
    return time.perf_counter() - t0, result


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and its children so far (Linux /proc; 0 elsewhere)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        total = 0
        for p in [pid, *map(int, children)]:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        return 0.0


def timed_cpu(pids: dict[str, int], fn, *args, **kw):  # noqa: ANN001, ANN201 - any callable
    """Wall time, result, and the CPU seconds each named process (and this one) spent meanwhile.

    On a machine busier than its cores, wall time follows the CPU all processes need, not how
    well their waits overlap: the CPU figures tell the two apart.
    """
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    mine = time.process_time()
    t, result = timed(fn, *args, **kw)
    used = {name: round(cpu_seconds(pid) - before[name], 2) for name, pid in pids.items()}
    used["this_process"] = round(time.process_time() - mine, 2)
    return t, result, used


class Servers:
    """A lensdb server and a stock Label Studio, both in a temporary folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tcp, self.http_port, self.ls_port = free_port(), free_port(), free_port()
        self.ls_url = f"http://127.0.0.1:{self.ls_port}"
        self.lensdb_http = f"http://127.0.0.1:{self.http_port}"
        self.procs: list[subprocess.Popen] = []
        self.lensdb_proc: subprocess.Popen | None = None
        self.ls_proc: subprocess.Popen | None = None

    def start_lensdb(self, workers: int = 1) -> None:
        env = {**os.environ, "LENSDB_ADMIN_PASSWORD": PASSWORD, "LENSDB_CORS_ORIGINS": self.ls_url}
        log = open(self.root / "lensdb.log", "ab")  # noqa: SIM115 - handed to the child
        self.lensdb_proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from lensdb.cli import main; main()",
                "serve",
                "--data",
                str(self.root / "db"),
                "--port",
                str(self.tcp),
                "--http-port",
                str(self.http_port),
                "--workers",
                str(workers),
            ],
            env=env,
            stdout=log,
            stderr=log,
        )
        self.procs.append(self.lensdb_proc)
        deadline = time.monotonic() + 60
        while "lensdb ready" not in (self.root / "lensdb.log").read_text():
            if time.monotonic() > deadline:
                raise RuntimeError("lensdb did not start")
            time.sleep(0.1)

    def start_label_studio(self) -> None:
        python = os.environ.get("LENSDB_BENCH_LS_PYTHON") or sys.executable
        env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
        env.update(
            QUIET_ENV,
            LABEL_STUDIO_BASE_DATA_DIR=str(self.root / "ls"),
            LABEL_STUDIO_USERNAME="bench@example.com",
            LABEL_STUDIO_PASSWORD="bench-pass-1",
            LABEL_STUDIO_USER_TOKEN=LS_TOKEN,
            LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN="true",
            LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK="true",
            LOG_LEVEL="ERROR",
        )
        log = open(self.root / "ls.log", "ab")  # noqa: SIM115 - handed to the child
        proc = subprocess.Popen(
            [
                python,
                "-c",
                "from label_studio.server import main; main()",
                "start",
                "--no-browser",
                "--internal-host",
                "127.0.0.1",
                "--port",
                str(self.ls_port),
            ],
            env=env,
            stdout=log,
            stderr=log,
        )
        self.procs.append(proc)
        self.ls_proc = proc
        wait_http(f"{self.ls_url}/health", proc, timeout=300)

    def db(self) -> Client:
        return TcpClient(
            ConnectionSettings(host="127.0.0.1", port=self.tcp, password=PASSWORD), timeout=30
        )

    def stop(self) -> None:
        for p in reversed(self.procs):
            stop(p)


def add_images(db: Client, n: int, dataset: str, size: int = 1500) -> None:
    for base in range(0, n, 500):
        q, blobs = [], []
        for i in range(base, min(base + 500, n)):
            ref = len(q) + 1
            q.append(
                {
                    "AddImage": {
                        "_ref": ref,
                        "properties": {
                            "guid": f"{dataset}-{i}",
                            "dataset": dataset,
                            "width": 96,
                            "height": 72,
                        },
                    }
                }
            )
            q.append(
                {
                    "AddBoundingBox": {
                        "image_ref": ref,
                        "label": "Cat",
                        "properties": {"score": 0.8},
                        "rectangle": {"x": 5, "y": 5, "width": 30, "height": 20},
                    }
                }
            )
            blobs.append(jpeg_near(size, i) if size > 2000 else _tiny(i))
        db.query(q, blobs)


def _tiny(i: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (96, 72), (i % 256, 40, 90)).save(buf, "JPEG")
    return buf.getvalue()


def bench_push(s: Servers, ls: LabelStudio, n: int) -> dict:
    db, http = s.db(), HttpClient(s.lensdb_http, "admin", PASSWORD)
    add_images(db, n, "push")
    select = {"dataset": ["==", "push"]}
    pid = ls.create_project("connector push", CONFIG)["id"]
    t_push, report = timed(
        push, ls, db, http, PushOptions(project_id=pid, constraints=select, predictions=True)
    )
    assert report.created == n, report
    t_file, r = timed(
        http.request,
        "POST",
        "/labelstudio/tasks",
        json={"constraints": select, "predictions": True, "label_config": CONFIG},
    )
    tasks = r.json()
    own = ls.create_project("LS own import", CONFIG)["id"]
    t_import, ids = timed(ls.import_tasks, own, tasks)
    assert len(ids) == n
    return {
        "tasks": n,
        "push_s": round(t_push, 2),
        "push_tasks_per_s": round(n / t_push),
        "task_file_s": round(t_file, 2),
        "ls_import_s": round(t_import, 2),
        "ls_import_tasks_per_s": round(n / t_import),
        "push_vs_ls_import": round(t_push / t_import, 2),
    }


def bench_pull(s: Servers, ls: LabelStudio, n: int, changes: int) -> dict:
    db, http = s.db(), HttpClient(s.lensdb_http, "admin", PASSWORD)
    add_images(db, n, "pull")
    r = http.request(
        "POST",
        "/labelstudio/tasks",
        json={"constraints": {"dataset": ["==", "pull"]}, "label_config": CONFIG},
    )
    tasks = r.json()
    for i, t in enumerate(tasks):
        t["annotations"] = [{"result": _annotation(i, 10)}]
    pid = ls.create_project("connector pull", CONFIG)["id"]
    ls.import_tasks(pid, tasks)
    # The export baseline below is the faster of a cold and a warm export; the pull's way (export
    # snapshots, view updates) is warmed up alike, by a full pull of a small project first (one
    # run's first snapshot of 250 tasks took 0.63 s, against 0.22 s for the same range later).
    warm = ls.create_project("connector pull warm-up", CONFIG)["id"]
    ls.import_tasks(warm, tasks[:WARM_UP_TASKS])
    # As in real use, the saves are older than a pull's settling time (a pull right after a save
    # re-reads the tasks changed in its last moments, in case a save was still in flight).
    time.sleep(SETTLED.total_seconds())
    # Label Studio's export, timed before and after the pulls (the first request of a kind warms
    # Label Studio up): the ratio uses the faster of the two.
    pids = {"label_studio": s.ls_proc.pid, "lensdb": s.lensdb_proc.pid}
    t_export_before, _, cpu_export_before = timed_cpu(pids, ls.export_json, pid)
    pull(ls, db, warm, True)
    t_full, full, cpu_full = timed_cpu(pids, pull, ls, db, pid, True)
    assert full.saved == n, full
    t_idle, idle = timed(pull, ls, db, pid, False)
    annotated = [a for page in _annotation_ids(ls, pid) for a in page][:changes]
    for k, aid in enumerate(annotated):
        ls.update_annotation(aid, _annotation(k, 40))
    t_incr, incr = timed(pull, ls, db, pid, False)
    assert incr.saved == changes, incr
    t_export_after, exported, cpu_export_after = timed_cpu(pids, ls.export_json, pid)
    assert len(exported) == n
    t_export = min(t_export_before, t_export_after)
    cpu_export = min(cpu_export_before, cpu_export_after, key=lambda c: c["label_studio"])
    return {
        "tasks": n,
        "full_pull_s": round(t_full, 2),
        "full_pull_tasks_per_s": round(n / t_full),
        "idle_pull_s": round(t_idle, 2),
        "idle_pull_written": idle.saved + idle.deleted,
        "idle_pull_tasks_read": idle.tasks,
        "changes": changes,
        "incremental_pull_s": round(t_incr, 2),
        "incremental_tasks_read": incr.tasks,
        "ls_full_export_s": round(t_export, 2),
        "incremental_vs_export": round(t_incr / t_export, 3),
        "full_pull_vs_export": round(t_full / t_export, 2),
        "full_pull_cpu_s": cpu_full,
        "ls_full_export_cpu_s": cpu_export,
        "full_pull_vs_export_cpu": round(
            sum(cpu_full.values()) / max(0.01, sum(cpu_export.values())), 2
        ),
    }


def _annotation(i: int, x: float) -> list[dict]:
    return [
        {
            "id": f"r{i}",
            "from_name": "label",
            "to_name": "image",
            "type": "rectanglelabels",
            "original_width": 96,
            "original_height": 72,
            "value": {
                "x": x,
                "y": 10,
                "width": 20,
                "height": 30,
                "rotation": 0,
                "rectanglelabels": ["Dog"],
            },
        },
        {
            "id": f"c{i}",
            "from_name": "quality",
            "to_name": "image",
            "type": "choices",
            "value": {"choices": ["good"]},
        },
    ]


def _annotation_ids(ls: LabelStudio, pid: int):  # noqa: ANN202 - a generator
    yield [a["id"] for t in ls.changed_tasks(pid, None, 1000) for a in t.get("annotations") or []]


WRK_LUA = """
local paths = {}
for line in io.lines("%s") do paths[#paths + 1] = line end
local i = 0
request = function()
  i = i %% #paths + 1
  return wrk.format("GET", paths[i])
end
"""


def wrk(url: str, paths: list[str], root: Path, seconds: int, name: str) -> dict:
    plist = root / f"{name}.paths"
    plist.write_text("\n".join(paths) + "\n")
    script = root / f"{name}.lua"
    script.write_text(WRK_LUA % plist)
    out = subprocess.run(
        ["wrk", "-t2", "-c32", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    ).stdout
    rps = float(
        next(line.split()[1] for line in out.splitlines() if line.startswith("Requests/sec"))
    )
    p99 = next(
        (line.split()[1] for line in out.splitlines() if line.strip().startswith("99%")), "?"
    )
    errors = [
        line.strip() for line in out.splitlines() if "Non-2xx" in line or "Socket errors" in line
    ]
    return {"requests_per_s": round(rps), "p99": p99, "errors": errors}


def bench_gateway(s: Servers, seconds: int, processes: int, images: int = 1000) -> dict:
    if not shutil.which("wrk") or not shutil.which("nginx"):
        return {"skipped": "apt-get install wrk nginx"}
    db, http = s.db(), HttpClient(s.lensdb_http, "admin", PASSWORD)
    add_images(db, images, "gw", size=10_000)
    tasks = http.request(
        "POST",
        "/labelstudio/tasks",
        json={"constraints": {"dataset": ["==", "gw"]}, "properties": ["guid"]},
    ).json()
    files = s.root / "www"
    files.mkdir()
    s.root.chmod(0o755)  # nginx workers run as an unprivileged user
    gw_paths, nginx_paths, sizes = [], [], []
    for t in tasks:
        link = t["data"]["image"]
        data = httpx.get(link).content
        sizes.append(len(data))
        (files / f"{t['data']['guid']}.jpg").write_bytes(data)
        gw_paths.append(link[len(s.lensdb_http) :])
        nginx_paths.append(f"/{t['data']['guid']}.jpg")
    port = free_port()
    conf = s.root / "nginx.conf"
    conf.write_text(f"""worker_processes {processes}; daemon off; pid {s.root}/nginx.pid; error_log {s.root}/nginx.err;
events {{ worker_connections 1024; }}
http {{ access_log off; sendfile on; keepalive_requests 100000;
  types {{ image/jpeg jpg; }}
  server {{ listen 127.0.0.1:{port}; root {files}; etag on; }} }}
""")
    nginx = subprocess.Popen(
        ["nginx", "-c", str(conf), "-p", str(s.root)], stderr=subprocess.DEVNULL
    )
    try:
        for _ in range(50):
            try:
                httpx.get(f"http://127.0.0.1:{port}{nginx_paths[0]}").raise_for_status()
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        gateway = wrk(s.lensdb_http, gw_paths, s.root, seconds, "gateway")
        static = wrk(f"http://127.0.0.1:{port}", nginx_paths, s.root, seconds, "nginx")
    finally:
        stop(nginx)
    return {
        "images": images,
        "mean_bytes": round(sum(sizes) / len(sizes)),
        "wrk": f"2 threads, 32 keep-alive connections, {seconds} s",
        "processes": processes,
        "gateway": gateway,
        "nginx": static,
        "gateway_vs_nginx": round(gateway["requests_per_s"] / static["requests_per_s"], 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--tasks", type=int, default=10_000)
    ap.add_argument("--changes", type=int, default=100)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--only", default="push,pull,gateway")
    ap.add_argument(
        "--workers",
        type=int,
        default=2,
        help="processes for lensdb's HTTP port (serve --workers) and for nginx alike",
    )
    args = ap.parse_args()
    parts = set(args.only.split(","))
    root = Path(tempfile.mkdtemp(prefix="lensdb-bench-connector-"))
    s = Servers(root)
    results: dict = {}
    try:
        s.start_lensdb(args.workers)
        if parts & {"push", "pull"}:
            s.start_label_studio()
            ls = LabelStudio(s.ls_url, LS_TOKEN)
            if "push" in parts:
                results["push"] = bench_push(s, ls, args.tasks)
                print(json.dumps({"push": results["push"]}), flush=True)
            if "pull" in parts:
                results["pull"] = bench_pull(s, ls, args.tasks, args.changes)
                print(json.dumps({"pull": results["pull"]}), flush=True)
        if "gateway" in parts:
            results["gateway"] = bench_gateway(s, args.seconds, args.workers)
            print(json.dumps({"gateway": results["gateway"]}), flush=True)
    finally:
        s.stop()
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
