"""Shared fixtures: a real `lensdb serve` subprocess on free ports.

`lensdb_server` is one server for the whole session (use unique class names), run once on the
embedded backend and once on PostgreSQL + S3 (moto): every test that takes it runs on both. The
`lensdb_server_factory` (and `lensdb_module_server_factory`) fixtures start dedicated servers with their own flags and data
folder, stopped at the end of the test. Both yield `LensdbServer` objects.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from backends import (
    PG_BIN,
    CephRGW,
    MotoServer,
    PostgresCluster,
    ceph_available,
    postgres_available,
)

ADMIN_PASSWORD = "admin-test-password"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LensdbServer:
    """A `lensdb serve` process; start/stop/restart keep the same ports and data folder."""

    def __init__(
        self,
        data_dir: Path,
        args: Sequence[str] = (),
        admin_password: str = ADMIN_PASSWORD,
        env: dict[str, str] | None = None,
        url: str | None = None,
        blobs: str | None = None,
    ) -> None:
        # With `url` (postgresql://) the data is there and in `blobs`; data_dir is the server's
        # local state (its TLS certificate), at the same place as in a data folder.
        self.url = url
        self.blobs = blobs
        self.data_dir = Path(data_dir)
        self.host = "127.0.0.1"
        self.port = free_port()
        self.http_port = free_port()
        self.args = list(args)
        self.admin_password = admin_password
        self.env = dict(env or {})
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}-server.log"
        self.proc: subprocess.Popen | None = None

    # -- process control -------------------------------------------------------------

    @property
    def ca_cert(self) -> str:
        return str(self.data_dir / "tls" / "ca.crt")

    @property
    def server_cert(self) -> str:
        return str(self.data_dir / "tls" / "server.crt")

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-c",
            "from lensdb.cli import main; main()",
            "serve",
            *self.data_args(),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--http-port",
            str(self.http_port),
            *self.args,
        ]

    def data_args(self) -> list[str]:
        if self.url is None:
            return ["--data", str(self.data_dir)]
        return ["--data", self.url, "--blobs", str(self.blobs), "--state", str(self.data_dir)]

    def start(self, timeout: float = 30.0) -> LensdbServer:
        env = {
            **os.environ,
            "LENSDB_ADMIN_PASSWORD": self.admin_password,
            # Tests log in with wrong passwords on purpose, all from 127.0.0.1; the limit itself
            # is tested in tests/reliability/test_hostile_access.py (which sets it back).
            "LENSDB_LOGIN_FAILURES_PER_MINUTE": "6000",
            **self.env,
        }
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(self.command(), env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"lensdb serve exited with {self.proc.returncode}:\n{self.log()}"
                )
            if (
                "lensdb ready" in self.log()
                and self._accepts(self.port)
                and self._accepts(self.http_port)
            ):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"lensdb serve did not become ready in {timeout}s:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    def restart(self) -> LensdbServer:
        self.stop()
        return self.start()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _accepts(self, port: int) -> bool:
        try:
            with socket.create_connection((self.host, port), timeout=0.5):
                return True
        except OSError:
            return False

    # -- clients ----------------------------------------------------------------------

    def connector(
        self,
        user: str = "admin",
        password: str | None = None,
        token: str = "",
        use_ssl: bool = True,
        **kw,
    ):
        """An aperturedb Connector; TLS verified against the server's CA by default."""
        from aperturedb.Connector import Connector

        if use_ssl:
            kw.setdefault("ca_cert", self.ca_cert)
            kw.setdefault("verify_hostname", True)
        if token:
            password = ""
        elif password is None:
            password = self.admin_password if user == "admin" else ""
        kw.setdefault("retry_interval_seconds", 0)
        return Connector(
            host="localhost",
            port=self.port,
            user=user,
            password=password,
            token=token,
            use_ssl=use_ssl,
            **kw,
        )

    def rest_connector(
        self, user: str = "admin", password: str | None = None, token: str = "", **kw
    ):
        """An aperturedb ConnectorRest over plain HTTP (the server is started without --http-tls)."""
        from aperturedb.ConnectorRest import ConnectorRest

        if token:
            password = ""
        elif password is None:
            password = self.admin_password if user == "admin" else ""
        use_ssl = kw.pop("use_ssl", "--http-tls" in self.args)
        if use_ssl:
            kw.setdefault("ca_cert", self.ca_cert)
        return ConnectorRest(
            host="localhost",
            port=self.http_port,
            user=user,
            password=password,
            token=token,
            use_ssl=use_ssl,
            **kw,
        )

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run `lensdb <args> --data DATA` (users/tokens management) against this folder."""
        env = {
            **os.environ,
            **self.env,
            "LENSDB_ADMIN_PASSWORD": self.admin_password,
            "LENSDB_DATA": self.url or str(self.data_dir),
        }
        if self.blobs:
            env["LENSDB_BLOBS"] = self.blobs
        return subprocess.run(
            [sys.executable, "-c", "from lensdb.cli import main; main()", *args],
            env=env,
            capture_output=True,
            text=True,
            check=check,
        )


SERVER_BACKENDS = ("sqlite", "postgres-s3")


@pytest.fixture(scope="session", params=SERVER_BACKENDS)
def lensdb_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LensdbServer]:
    folder = tmp_path_factory.mktemp("lensdb") / "data"
    if request.param == "sqlite":
        server = LensdbServer(folder).start()
    else:
        cluster = request.getfixturevalue("postgres_cluster")
        s3 = request.getfixturevalue("moto_server")
        server = LensdbServer(
            folder, url=cluster.new_database(), blobs=f"s3://{s3.new_bucket()}/lensdb", env=s3.env()
        ).start()
    yield server
    server.stop()


def _factory(folder: Path) -> Iterator[Callable[..., LensdbServer]]:
    started: list[LensdbServer] = []

    def make(*args: str, name: str = "data", start: bool = True, **kw) -> LensdbServer:
        server = LensdbServer(folder / name, args, **kw)
        started.append(server)
        return server.start() if start else server

    yield make
    for s in started:
        s.stop()


@pytest.fixture
def lensdb_server_factory(tmp_path: Path) -> Iterator[Callable[..., LensdbServer]]:
    """make(*serve_args, name="data", start=True, admin_password=..., env=...) -> LensdbServer"""
    yield from _factory(tmp_path)


@pytest.fixture(scope="module")
def lensdb_module_server_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., LensdbServer]]:
    """Like lensdb_server_factory, for module-scoped fixtures (servers stop after the module)."""
    yield from _factory(tmp_path_factory.mktemp("lensdb-module"))


# -- PostgreSQL and S3 for the scale-out backend ------------------------------------------------


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A private PostgreSQL 15 cluster (or LENSDB_TEST_POSTGRES_URL), for the whole session."""
    if not postgres_available():
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL 15 is missing ({PG_BIN}/initdb): scripts/test installs it")
        pytest.skip(f"PostgreSQL 15 is not installed ({PG_BIN}/initdb); scripts/test installs it")
    cluster = PostgresCluster().start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def ceph_rgw() -> Iterator[CephRGW]:
    """Ceph's S3 gateway on a private one-node cluster (Debian's radosgw, ceph-mon, ceph-osd)."""
    if not ceph_available():
        if os.environ.get("CI"):
            pytest.fail(
                "Ceph RGW is missing (radosgw, ceph-mon, ceph-osd): scripts/test installs it"
            )
        pytest.skip(
            "Ceph RGW is not installed (radosgw, ceph-mon, ceph-osd); scripts/test installs it"
        )
    try:
        rgw = CephRGW().start()
    except RuntimeError as first:  # once more on new ports, in a new folder; then say why
        try:
            rgw = CephRGW().start()
        except RuntimeError as second:
            raise RuntimeError(f"{first}\n\nand again:\n{second}") from None
    yield rgw
    rgw.stop()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """moto's standalone S3 server on a free port."""
    server = MotoServer().start()
    # boto3 in this process (and in servers it starts) reads the standard AWS variables.
    saved = {k: os.environ.get(k) for k in server.env()}
    os.environ.update(server.env())
    yield server
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    server.stop()
