"""Fixtures of the server tests."""

from __future__ import annotations

import pytest

from conftest import LensdbServer


@pytest.fixture(scope="module")
def pair(postgres_cluster, moto_server, tmp_path_factory):
    """Two `lensdb serve` processes on one PostgreSQL database and one S3 bucket (moto), per
    test module."""
    url = postgres_cluster.new_database()
    bucket = moto_server.new_bucket()
    folder = tmp_path_factory.mktemp("scale")
    servers = [
        LensdbServer(
            folder / f"state{i}", url=url, blobs=f"s3://{bucket}/lensdb", env=moto_server.env()
        )
        for i in range(2)
    ]
    for s in servers:
        s.start()
    yield servers
    for s in servers:
        s.stop()
    postgres_cluster.drop(url)
