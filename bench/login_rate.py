"""Password guessing against a `lensdb serve` subprocess: attempts/s without and with the limit.

For each configuration a fresh server is started, then `--threads` guessers send wrong-password
Authenticate queries for `--seconds` (from one address, then spread over 8 loopback addresses),
while one honest client runs FindEntity queries and logs in with the right password. Printed:
guesses per second (all, checked with a hash, refused at once), the honest client's query latency
p50/p99 during the flood against its latency alone, whether the right password got in, and the
server's peak memory.

"without limit" is `--login-failures-per-minute 0` (the hashes still run in the 2-thread login
pool); "with limit" is the default (10 failures a minute per address and per user after a burst
of 10).

Usage: python bench/login_rate.py [--seconds 10] [--threads 8]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from lensdb.server import message

PASSWORD = "bench-login-password"


class Raw:
    def __init__(self, port: int, source: str = "127.0.0.1") -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), 30, source_address=(source, 0))
        self.sock.sendall(struct.pack("<III", 8, 1, 1))
        self._exactly(12)

    def _exactly(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("closed")
            buf += chunk
        return buf

    def query(self, q: list, token: str = "") -> object:
        payload = message.encode(json.dumps(q), [], token)
        self.sock.sendall(struct.pack("<I", len(payload)) + payload)
        (n,) = struct.unpack("<I", self._exactly(4))
        return json.loads(message.decode(self._exactly(n)).json)

    def login(self, user: str, password: str) -> dict:
        r = self.query([{"Authenticate": {"username": user, "password": password}}])
        return r[0]["Authenticate"]  # type: ignore[index]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(folder: Path, limit: str, src: str | None) -> tuple[subprocess.Popen, int]:
    port, http = _free_port(), _free_port()
    env = {
        **os.environ,
        "LENSDB_ADMIN_PASSWORD": PASSWORD,
        "LENSDB_LOGIN_FAILURES_PER_MINUTE": limit,
    }
    if src:  # another checkout's code (e.g. before the limit existed)
        env["PYTHONPATH"] = src
    log = open(folder / "server.log", "wb")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        [
            sys.executable, "-c", "from lensdb.cli import main; main()", "serve",
            "--data", str(folder / "data"), "--port", str(port), "--http-port", str(http),
        ],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if "lensdb ready" in (folder / "server.log").read_text(errors="replace"):
            return proc, port
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the server did not start")


def _run(limit: str, seconds: float, threads: int, spread: bool, src: str | None = None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = _start(Path(tmp), limit, src)
        try:
            honest = Raw(port)
            token = honest.login("admin", PASSWORD)["session_token"]
            honest.query([{"AddEntity": {"class": "Bench", "properties": {"k": 1}}}], token)
            find = [{"FindEntity": {"with_class": "Bench", "results": {"count": True}}}]

            def timed(n: int) -> list[float]:
                out = []
                for _ in range(n):
                    t = time.perf_counter()
                    honest.query(find, token)
                    out.append(time.perf_counter() - t)
                    time.sleep(0.01)
                return out

            alone = timed(100)
            counts = {"checked": 0, "refused": 0}
            checked_at: list[float] = []
            lock = threading.Lock()
            stop = threading.Event()

            def guess(i: int) -> None:
                source = f"127.0.0.{2 + i % 8}" if spread else "127.0.0.1"
                c = Raw(port, source)
                n = 0
                while not stop.is_set():
                    r = c.login("admin", f"guess-{i}-{n}")
                    n += 1
                    kind = "refused" if "Too many" in r["info"] else "checked"
                    with lock:
                        counts[kind] += 1
                        if kind == "checked":
                            checked_at.append(time.perf_counter())

            pool = [threading.Thread(target=guess, args=(i,)) for i in range(threads)]
            server = psutil.Process(proc.pid)
            peak = server.memory_info().rss
            start = time.perf_counter()
            for t in pool:
                t.start()
            during: list[float] = []
            while time.perf_counter() - start < seconds:
                during += timed(10)
                peak = max(peak, server.memory_info().rss)
            # The owner logs in from an address of their own while the flood goes on.
            owner = Raw(port, "127.0.0.200").login("admin", PASSWORD)
            stop.set()
            elapsed = time.perf_counter() - start
            for t in pool:
                t.join()
            # After the burst: the rate a guesser keeps up over time.
            later = [t for t in checked_at if t > start + seconds / 2]
            return {
                "attempts/s": (counts["checked"] + counts["refused"]) / elapsed,
                "steady checked/s": len(later) / (seconds / 2),
                "checked/s": counts["checked"] / elapsed,
                "refused/s": counts["refused"] / elapsed,
                "p50 alone ms": statistics.median(alone) * 1000,
                "p50 flood ms": statistics.median(during) * 1000,
                "p99 flood ms": sorted(during)[int(len(during) * 0.99)] * 1000,
                "owner got in": owner["status"] == 0,
                "peak RSS MB": peak / 2**20,
            }
        finally:
            proc.terminate()
            proc.wait(30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument(
        "--before-src",
        help="a src/ folder of lensdb before the limit (git archive OLD src | tar -x -C DIR): "
        "adds its rows (password hashes on the query threads, no limit)",
    )
    args = ap.parse_args()
    rows = []
    configs = [("without limit", "0", None), ("with limit", "10", None)]
    if args.before_src:
        configs.insert(0, ("before (old)", "0", args.before_src))
    for spread in (False, True):
        for name, limit, src in configs:
            r = _run(limit, args.seconds, args.threads, spread, src)
            rows.append((name, "8 addresses" if spread else "1 address", r))
    print(
        f"{'config':14} {'guessers':12} {'tries/s':>8} {'hashed/s':>9} {'2nd half':>9} "
        f"{'refused/s':>10} "
        f"{'p50 alone':>10} {'p50 flood':>10} {'p99 flood':>10} {'owner in':>9} {'peak MB':>8}"
    )
    for name, where, r in rows:
        print(
            f"{name:14} {where:12} {r['attempts/s']:8.1f} {r['checked/s']:9.2f} "
            f"{r['steady checked/s']:9.2f} {r['refused/s']:10.1f} {r['p50 alone ms']:9.2f}m {r['p50 flood ms']:9.2f}m "
            f"{r['p99 flood ms']:9.2f}m {str(r['owner got in']):>9} {r['peak RSS MB']:8.0f}"
        )
    first = configs[0][0]
    for where in ("1 address", "8 addresses"):
        before = next(r for n, w, r in rows if w == where and n == first)
        after = next(r for n, w, r in rows if w == where and n == "with limit")
        b, a = before["steady checked/s"], after["steady checked/s"]
        print(
            f"{where}: passwords tried per second once the burst is spent, {first} {b:.2f} -> "
            f"with limit {a:.2f}; honest client's p99 {before['p99 flood ms']:.0f} -> "
            f"{after['p99 flood ms']:.0f} ms"
        )


if __name__ == "__main__":
    main()
