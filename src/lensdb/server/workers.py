"""Several processes answering one HTTP port (`lensdb serve --workers N`).

One Python process serves about 11,000 media requests a second here (bench/connector.py, 59 us
of CPU each), held by the interpreter lock, not by the disk. The server binds the HTTP port once
and starts N-1 more processes that inherit the listening socket; the kernel hands each new
connection to one of them. Not evenly (whichever process wakes first takes every waiting
connection: 26 and 6 of wrk's 32 with two processes), which costs little, since a few busy
connections keep a process busy; and a stopped process takes none. Each child opens the same database and users on its own (SQLite and the pack files are
made for several processes: writers take SQLite's lock, staged packs are held by flock; see
store/blobfiles.py), so any request can go to any process. The TCP port stays in the parent.

The configuration goes to the children through a pipe (it may hold the admin password, which
must not show in a process list). A child stops when the parent stops it, or when the parent
dies (its stdin closes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lensdb.server.runner import ServeConfig

log = logging.getLogger("lensdb.server")


def listen(host: str, port: int) -> socket.socket:
    """The HTTP port, bound and listening, to be shared with the worker processes."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise RuntimeError(f"the HTTP server could not start on {host}:{port}: {e}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


class Children:
    """The worker processes; `stop` ends them (SIGTERM, then SIGKILL after the grace time)."""

    def __init__(self, procs: list[subprocess.Popen], grace: float) -> None:
        self.procs = procs
        self.grace = grace

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=self.grace + 5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def start(config: ServeConfig, sock: socket.socket, count: int) -> Children:
    """Start `count` processes serving HTTP on `sock` with this configuration."""
    payload = pickle.dumps(config)
    procs = []
    for n in range(count):
        proc = subprocess.Popen(
            [sys.executable, "-m", "lensdb.server.workers", str(sock.fileno()), str(n + 2)],
            stdin=subprocess.PIPE,
            pass_fds=(sock.fileno(),),
        )
        assert proc.stdin is not None
        proc.stdin.write(len(payload).to_bytes(8, "big") + payload)
        proc.stdin.flush()  # kept open: its end tells the child that the parent is gone
        procs.append(proc)
    log.info("started %d more HTTP worker process(es)", count)
    return Children(procs, config.shutdown_grace)


def _child(fd: int, number: int) -> None:
    from lensdb.server.runner import _certificate, http_server, open_context

    size = int.from_bytes(sys.stdin.buffer.read(8), "big")
    config: ServeConfig = pickle.loads(sys.stdin.buffer.read(size))  # from our own parent
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s %(levelname)s %(name)s[worker {number}]: %(message)s",
    )
    sock = socket.socket(fileno=fd)
    context = open_context(config)
    cert, key = _certificate(config, Path(config.data_dir))
    server = http_server(config, context, cert, key)

    def parent_gone() -> None:
        with contextlib.suppress(OSError):
            sys.stdin.buffer.read()  # returns at EOF: the parent closed the pipe or died
        server.should_exit = True

    threading.Thread(target=parent_gone, daemon=True).start()

    async def run() -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, lambda: setattr(server, "should_exit", True))
        loop.add_signal_handler(signal.SIGINT, lambda: None)  # the parent decides
        try:
            await server.serve(sockets=[sock])
        finally:
            await loop.run_in_executor(None, context.executor.shutdown, True)
            context.db.close()  # type: ignore[attr-defined]
            context.auth.store.close()

    try:
        from uvloop import new_event_loop
    except ImportError:
        new_event_loop = None  # type: ignore[assignment]
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(run())
    os._exit(0)


if __name__ == "__main__":
    _child(int(sys.argv[1]), int(sys.argv[2]))
