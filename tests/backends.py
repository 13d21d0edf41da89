"""Real PostgreSQL and S3 (moto, Ceph RGW) services for the tests, and the targets a suite runs against.

`PostgresCluster.start()` runs a private PostgreSQL 15 cluster in a temp folder on a free port
(initdb + pg_ctl, as the `postgres` user when the tests run as root: PostgreSQL refuses to run as
root), unless LENSDB_TEST_POSTGRES_URL names a server to use. Each test database is a copy of a
template that already has lensdb's schema (CREATE DATABASE ... TEMPLATE, a few ms).
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

PG_BIN = Path(os.environ.get("LENSDB_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
URL_ENV = "LENSDB_TEST_POSTGRES_URL"
TEMPLATE = "lensdb_test_template"


def _wait_for_port(port: int, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not start on port {port} within {seconds:.0f} s")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_available() -> bool:
    return bool(os.environ.get(URL_ENV)) or (PG_BIN / "initdb").exists()


def _as_postgres(cmd: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


@dataclass(frozen=True)
class PgTarget:
    """A PostgreSQL database plus where its blobs go."""

    url: str
    blobs: str
    blob_root: Path | None = None  # the folder behind a file:// blobs URL
    s3: S3Endpoint | None = None  # the server behind an s3:// blobs URL
    bucket: str = ""


class PostgresCluster:
    def __init__(self) -> None:
        self.folder: Path | None = None
        self.url = ""
        self._names = itertools.count()
        self._free: list[str] = []

    def start(self) -> PostgresCluster:
        given = os.environ.get(URL_ENV)
        if given:
            self.url = given
        else:
            self._run_private()
        self._make_template()
        return self

    def _run_private(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="lensdb-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        data = self.folder / "data"
        subprocess.run(
            _as_postgres(
                [
                    str(PG_BIN / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                ]
            ),
            check=True,
            capture_output=True,
        )
        port = free_port()
        # Durability settings off: a test cluster is thrown away, and fsyncs would dominate.
        # The options go into the cluster's config, so a restart keeps port and settings.
        with open(data / "postgresql.auto.conf", "a") as conf:
            conf.write(
                f"port = {port}\nunix_socket_directories = '{self.folder}'\n"
                "listen_addresses = '127.0.0.1'\nfsync = off\nsynchronous_commit = off\n"
                "full_page_writes = off\nmax_connections = 400\n"
            )
        subprocess.run(
            _as_postgres(
                [
                    str(PG_BIN / "pg_ctl"),
                    "-D",
                    str(data),
                    "-w",
                    "-l",
                    str(self.folder / "log"),
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
        )
        self.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"

    def _make_template(self) -> None:
        import psycopg

        from lensdb.store.postgres import PostgresStore

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {TEMPLATE}")
        root = Path(tempfile.mkdtemp(prefix="lensdb-pg-template-blobs-"))
        from lensdb.store.blobfiles import FileBlobs

        PostgresStore(with_database(self.url, TEMPLATE), FileBlobs(root)).close()
        shutil.rmtree(root, ignore_errors=True)

    def new_database(self) -> str:
        """A database with lensdb's schema and no rows: a recycled one (emptied by `drop`, a
        few ms) or a copy of the template (CREATE DATABASE writes it through the WAL, ~0.3 s)."""
        import psycopg

        if self._free:
            return self._free.pop()
        name = f"lensdb_test_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
        return with_database(self.url, name)

    def drop(self, url: str) -> None:
        """Empty the database for the next test (ids start at 1 again), or drop it when some
        session still holds it."""
        import psycopg

        name = urlsplit(url).path.lstrip("/")
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                others = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                    "current_database() AND pid <> pg_backend_pid()"
                ).fetchone()[0]
                # A server's users, tokens and secrets (auth/pgstore.py) live here too: a test
                # that started one gets a fresh database, not one with another test's admin.
                served = conn.execute("SELECT to_regclass('users') IS NOT NULL").fetchone()[0]
                if not others and not served:
                    with conn.transaction():
                        for (index,) in conn.execute(
                            "SELECT indexname FROM pg_indexes WHERE indexname LIKE 'pix\\_%'"
                        ).fetchall():
                            conn.execute(f"DROP INDEX {index}")
                        conn.execute(
                            "TRUNCATE objects, connections, property_indexes, "
                            "blob_intents, blob_trash, changes, change_horizons RESTART IDENTITY"
                        )
                    self._free.append(url)
                    return
        except psycopg.OperationalError:
            pass
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def pids(self) -> list[int]:
        """The private cluster's postmaster (its backends are its children); none for a
        server given by LENSDB_TEST_POSTGRES_URL. For benches that meter CPU."""
        pidfile = self.folder / "data" / "postmaster.pid" if self.folder else None
        if pidfile is None or not pidfile.exists():
            return []
        return [int(pidfile.read_text().split()[0])]

    def stop(self) -> None:
        if self.folder is None:
            return
        subprocess.run(
            _as_postgres(
                [
                    str(PG_BIN / "pg_ctl"),
                    "-D",
                    str(self.folder / "data"),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                ]
            ),
            capture_output=True,
        )
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder = None

    def stop_server(self) -> None:
        """Stop the private cluster, keeping its files (failure tests); `start_server` again."""
        assert self.folder is not None
        subprocess.run(
            _as_postgres(
                [
                    str(PG_BIN / "pg_ctl"),
                    "-D",
                    str(self.folder / "data"),
                    "-m",
                    "fast",
                    "-w",
                    "stop",
                ]
            ),
            check=True,
            capture_output=True,
        )

    def start_server(self) -> None:
        assert self.folder is not None
        subprocess.run(
            _as_postgres(
                [
                    str(PG_BIN / "pg_ctl"),
                    "-D",
                    str(self.folder / "data"),
                    "-w",
                    "-l",
                    str(self.folder / "log"),
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
        )


class S3Endpoint:
    """An S3-compatible HTTP endpoint the tests make buckets on (moto or Ceph RGW)."""

    endpoint = ""
    access_key = "test"
    secret_key = "test"
    bucket_prefix = "lensdb-test"

    def __init__(self) -> None:
        self._buckets = itertools.count()

    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": "us-east-1",
        }

    def client(self):  # noqa: ANN201 - a boto3 S3 client
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
        )

    def new_bucket(self) -> str:
        name = f"{self.bucket_prefix}-{next(self._buckets)}"
        self.client().create_bucket(Bucket=name)
        return name

    def empty_bucket(self, name: str) -> None:
        client = self.client()
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=name, Delete={"Objects": keys})
        client.delete_bucket(Bucket=name)

    def keys(self, bucket: str) -> list[str]:
        client = self.client()
        return sorted(
            o["Key"]
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for o in page.get("Contents", [])
        )


class MotoServer(S3Endpoint):
    """moto's standalone S3 server (`moto[server]`) on a free port, as a real HTTP endpoint."""

    def __init__(self) -> None:
        super().__init__()
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> MotoServer:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for_port(self.port, 30, "moto server")
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


CEPH_BIN = Path(os.environ.get("LENSDB_TEST_CEPH_BIN", "/usr/bin"))


def ceph_available() -> bool:
    return all((CEPH_BIN / b).exists() for b in ("ceph-mon", "ceph-osd", "radosgw"))


class CephRGW(S3Endpoint):
    """Ceph's S3 gateway (RGW, from Debian's `radosgw`) on a private one-node cluster: one
    monitor and one in-memory OSD (`memstore`) in a temp folder, on free ports, with
    authentication off inside the cluster and one S3 user. About 15 s to start; everything
    goes with the folder at `stop`. The beast frontend runs with tcp_nodelay: without it each
    small GET waits for a delayed ACK (18 GETs/s against 160 here)."""

    access_key = "LENSDBTESTKEY"
    secret_key = "LENSDBTESTSECRET"
    bucket_prefix = "lensdb-rgw"  # RGW wants bucket names of 3 characters or more

    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="lensdb-ceph-"))
        self.mon_port = free_port()
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.conf = self.folder / "ceph.conf"

    def _run(self, *cmd: str) -> str:
        done = subprocess.run(
            [str(CEPH_BIN / cmd[0]), "-c", str(self.conf), *cmd[1:]],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed: {done.stderr.strip()[-2000:]}")
        return done.stdout

    def start(self) -> CephRGW:
        import uuid

        d = self.folder
        for sub in ("mon", "osd", "run", "log"):
            (d / sub).mkdir()
        fsid = str(uuid.uuid4())
        self.conf.write_text(
            f"""[global]
fsid = {fsid}
mon host = v1:127.0.0.1:{self.mon_port}
mon initial members = a
auth cluster required = none
auth service required = none
auth client required = none
auth allow insecure global id reclaim = true
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
mon allow pool size one = true
mon allow pool delete = true
mon max pg per osd = 1000
mon data avail warn = 1
mon data avail crit = 0
osd objectstore = memstore
memstore device bytes = 2147483648
osd crush chooseleaf type = 0
run dir = {d}/run
log file = {d}/log/$name.log
admin socket = {d}/run/$name.asok
pid file = {d}/run/$name.pid
mon data = {d}/mon
osd data = {d}/osd
keyring = {d}/keyring
ms bind ipv6 = false
public addr = 127.0.0.1
[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:{self.port} tcp_nodelay=1
rgw dns name = localhost
"""
        )
        keyring = str(d / "keyring")
        self._run("ceph-authtool", "--create-keyring", keyring, "--gen-key", "-n", "mon.")
        subprocess.run(
            [
                str(CEPH_BIN / "monmaptool"),
                "--create",
                "--add",
                "a",
                f"v1:127.0.0.1:{self.mon_port}",
                "--fsid",
                fsid,
                str(d / "monmap"),
            ],
            check=True,
            capture_output=True,
        )
        try:
            self._run("ceph-mon", "--mkfs", "-i", "a", "--monmap", str(d / "monmap"))
            self._run("ceph-mon", "-i", "a")
            deadline = time.monotonic() + 60
            while True:  # the monitor answers once it has formed its quorum of one
                try:
                    self._run("ceph", "--connect-timeout", "10", "osd", "create")
                    break
                except RuntimeError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
            self._run("ceph-osd", "-i", "0", "--mkfs")
            self._run("ceph-osd", "-i", "0")
            self._run("radosgw", "-n", "client.rgw")
            _wait_for_port(self.port, 90, "Ceph RGW")
            self._run(
                "radosgw-admin",
                "user",
                "create",
                "--uid=lensdb",
                "--display-name=lensdb tests",
                f"--access-key={self.access_key}",
                f"--secret={self.secret_key}",
            )
        except BaseException as e:
            logs = "".join(
                f"\n--- {log.name}:\n"
                + "\n".join(log.read_text(errors="replace").splitlines()[-15:])
                for log in sorted((d / "log").glob("*.log"))
            )
            self.stop()
            if isinstance(e, Exception):
                raise RuntimeError(f"Ceph RGW did not start: {e}{logs}") from e
            raise
        return self

    def stop(self) -> None:
        for pidfile in (self.folder / "run").glob("*.pid"):
            try:
                os.kill(int(pidfile.read_text().strip()), 9)
            except (ValueError, OSError):
                pass
        shutil.rmtree(self.folder, ignore_errors=True)
