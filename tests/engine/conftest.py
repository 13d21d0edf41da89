"""The engine suite runs once per backend: every test that takes `db` or `folder` is run against
the embedded SQLite store, against PostgreSQL with blobs in a folder (`file://`), against
PostgreSQL with blobs in S3 (moto's server) and against PostgreSQL with blobs in Ceph's S3
gateway (RGW, a real object store with its own rules: bucket names, ranged reads, multipart).

`folder` is what `open_db` opens: a data folder (SQLite) or a `PgTarget` (a fresh PostgreSQL
database copied from a migrated template, plus its blob folder). Tests of SQLite-only machinery
(pack files, intent files, compaction) are marked `sqlite_only`.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from backends import PgTarget, PostgresCluster, S3Endpoint
from lensdb import Database

from .helpers import open_db

BACKENDS = ("sqlite", "postgres", "postgres-s3", "postgres-rgw")


class Targets:
    """Makes and removes the databases of one backend."""

    def __init__(
        self, backend: str, cluster: PostgresCluster | None, s3: S3Endpoint | None
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


# Ceph's gateway costs about a second per test for its bucket, so it runs the modules that put
# and read blobs (the rest is the same SQL as on "postgres-s3").
RGW_MODULES = {
    "test_blobs.py",
    "test_images.py",
    "test_transactions.py",
    "test_postgres.py",
    "test_pg_compaction.py",
    "test_pg_restart.py",
    "test_lookahead.py",
    "test_copy.py",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    keep, drop = [], []
    for item in items:
        spec = getattr(item, "callspec", None)
        rgw = spec is not None and spec.params.get("backend") == "postgres-rgw"
        (drop if rgw and item.path.name not in RGW_MODULES else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def targets(backend: str, request: pytest.FixtureRequest) -> Targets:
    pg = backend.startswith("postgres")
    cluster = request.getfixturevalue("postgres_cluster") if pg else None
    s3 = None
    if backend == "postgres-s3":
        s3 = request.getfixturevalue("moto_server")
    elif backend == "postgres-rgw":
        s3 = request.getfixturevalue("ceph_rgw")
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
def folder(
    targets: Targets, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path | PgTarget]:
    if targets.s3 is not None:  # boto3 reads the endpoint and keys from the AWS variables
        for key, value in targets.s3.env().items():
            monkeypatch.setenv(key, value)
    target = targets.new(tmp_path)
    yield target
    targets.drop(target)


@pytest.fixture
def db(folder: Path | PgTarget) -> Iterator[Database]:
    database = open_db(folder)
    yield database
    database.close()
