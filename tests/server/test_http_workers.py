"""`lensdb serve --workers N`: N processes answer the HTTP port, all on the one database.

Checked as a client sees it: with the first process stopped (SIGSTOP), the other processes still
answer media and REST requests and see what was written through TCP; writes through HTTP land in
the one database; stopping the server stops every worker, and so does killing it.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx

from conftest import LensdbServer
from connector.helpers import add_images, session_token, uniqueids


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        if ppid == pid and b"lensdb.server.workers" in cmdline:
            out.append(int(entry.name))
    return sorted(out)


def _gone(pids: list[int], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [p for p in pids if Path(f"/proc/{p}").exists() and _state(p) != "Z"]
        if not alive:
            return True
        time.sleep(0.1)
    return False


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return "gone"


def _fresh_get(url: str, **kw) -> httpx.Response:
    """One request on a new connection: the kernel may hand it to any worker."""
    with httpx.Client(timeout=10) as c:
        return c.get(url, **kw)


def test_workers_share_the_port_and_the_database(tmp_path: Path) -> None:
    server = LensdbServer(tmp_path / "data", ["--workers", "3"]).start()
    try:
        workers = _children(server.proc.pid)
        assert len(workers) == 2, workers
        client = server.connector()
        add_images(client, 2, "workers")
        uid = uniqueids(client, {"dataset": ["==", "workers"]})[0]
        token = session_token(server)
        base = f"http://127.0.0.1:{server.http_port}"
        auth = {"Authorization": f"Bearer {token}"}
        whole = _fresh_get(f"{base}/media/images/{uid}", headers=auth)
        assert whole.status_code == 200 and whole.headers["content-type"] == "image/jpeg"

        os.kill(server.proc.pid, signal.SIGSTOP)  # only the workers can answer now
        try:
            for _ in range(10):
                r = _fresh_get(f"{base}/media/images/{uid}", headers=auth)
                assert r.status_code == 200 and r.content == whole.content
            part = _fresh_get(f"{base}/media/images/{uid}", headers={**auth, "Range": "bytes=-100"})
            assert part.status_code == 206 and part.content == whole.content[-100:]
            for i in range(10):  # writes through the workers
                with httpx.Client(timeout=10) as c:
                    r = c.post(
                        f"{base}/api/",
                        headers=auth,
                        json=[{"AddEntity": {"class": "Seen", "properties": {"n": i}}}],
                    )
                assert r.status_code == 200 and r.json()["json"][0]["AddEntity"]["status"] == 0
            with httpx.Client(timeout=10) as c:
                r = c.post(
                    f"{base}/api/",
                    headers=auth,
                    json=[{"FindImage": {"constraints": {"dataset": ["==", "workers"]},
                                         "results": {"count": True}, "blobs": False}}],
                )  # fmt: skip
            assert r.json()["json"][0]["FindImage"]["count"] == 2  # written through TCP
        finally:
            os.kill(server.proc.pid, signal.SIGCONT)
        r, _ = client.query([{"FindEntity": {"with_class": "Seen", "results": {"count": True}}}])
        assert r[0]["FindEntity"]["count"] == 10
        assert "started 2 more HTTP worker process(es)" in server.log()
        assert server.stop() == 0
        assert _gone(workers), "workers outlived the server"
    finally:
        if server.running():
            server.stop()


def test_workers_end_when_the_server_is_killed(tmp_path: Path) -> None:
    server = LensdbServer(tmp_path / "data", ["--workers", "2"]).start()
    workers = _children(server.proc.pid)
    assert len(workers) == 1
    server.proc.kill()
    server.proc.wait()
    assert _gone(workers), "a worker kept running after its server was killed"
