"""Real PostgreSQL and S3 (moto) services for the tests, and the targets a suite runs against.

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
    s3: MotoServer | None = None  # the server behind an s3:// blobs URL
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


class MotoServer:
    """moto's standalone S3 server (`moto[server]`) on a free port, as a real HTTP endpoint."""

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self._buckets = itertools.count()

    def start(self) -> MotoServer:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("moto server did not start")

    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_REGION": "us-east-1",
        }

    def client(self):  # noqa: ANN201 - a boto3 S3 client
        import boto3

        env = self.env()
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=env["AWS_REGION"],
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )

    def new_bucket(self) -> str:
        name = f"lensdb-test-{next(self._buckets)}"
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

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None
