"""The engine suite runs once per backend: every test that takes `db` or `folder` is run against
the embedded SQLite store, against PostgreSQL with blobs in a folder (`file://`) and against
PostgreSQL with blobs in S3 (moto's server).

`folder` is what `open_db` opens: a data folder (SQLite) or a `PgTarget` (a fresh PostgreSQL
database copied from a migrated template, plus its blob folder). Tests of SQLite-only machinery
(pack files, intent files, compaction) are marked `sqlite_only`.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from backends import MotoServer, PgTarget, PostgresCluster
from lensdb import Database

from .helpers import open_db

BACKENDS = ("sqlite", "postgres", "postgres-s3")


class Targets:
    """Makes and removes the databases of one backend."""

    def __init__(
        self, backend: str, cluster: PostgresCluster | None, s3: MotoServer | None
    ) -> None:
        self.backend = backend
        self.cluster = cluster
        self.s3 = s3

    def new(self, tmp: Path) -> Path | PgTarget:
        if self.cluster is None:
            return tmp / "db"
        if self.s3 is not None:
            bucket = self.s3.new_bucket()
            return PgTarget(
                self.cluster.new_database(), f"s3://{bucket}/data", s3=self.s3, bucket=bucket
            )
        root = tmp / "pg-blobs"
        return PgTarget(self.cluster.new_database(), f"file://{root}", root)

    def drop(self, target: Path | PgTarget) -> None:
        if isinstance(target, PgTarget) and self.cluster is not None:
            self.cluster.drop(target.url)
            if target.blob_root is not None:
                shutil.rmtree(target.blob_root, ignore_errors=True)
            if target.s3 is not None:
                target.s3.empty_bucket(target.bucket)


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def targets(backend: str, request: pytest.FixtureRequest) -> Targets:
    pg = backend.startswith("postgres")
    cluster = request.getfixturevalue("postgres_cluster") if pg else None
    s3 = request.getfixturevalue("moto_server") if backend.endswith("s3") else None
    return Targets(backend, cluster, s3)


@pytest.fixture(autouse=True)
def _only_on_sqlite(request: pytest.FixtureRequest) -> None:
    if (
        request.node.get_closest_marker("sqlite_only")
        and "backend" in request.fixturenames
        and request.getfixturevalue("backend") != "sqlite"
    ):
        pytest.skip("tests the embedded store's pack and intent files")


@pytest.fixture
def folder(targets: Targets, tmp_path: Path) -> Iterator[Path | PgTarget]:
    target = targets.new(tmp_path)
    yield target
    targets.drop(target)


@pytest.fixture
def db(folder: Path | PgTarget) -> Iterator[Database]:
    database = open_db(folder)
    yield database
    database.close()
