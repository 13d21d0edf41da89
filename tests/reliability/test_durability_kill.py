"""Every acknowledged write survives a SIGKILL of the server (issue 12, Jepsen-style).

Eight SDK clients ingest one transaction after another (an image, two boxes on it, an entity
and a connection between them), each recording the queries the server acknowledged; the
server is killed with SIGKILL at a random moment and started again, several times. Then every
acknowledged query must be there with its image bytes, no transaction may be partly there (all
five objects of a tag or none), nothing may appear that was never sent, and `lensdb check` must
be clean. The full run (20 kills) is `bench/soak.py`; CI runs fewer.
"""

from __future__ import annotations

import random

import pytest

from reliability.workload import check_ingest, kill_cycles

KILLS = {"sqlite": 5, "postgres-s3": 2}


@pytest.fixture(params=["sqlite", "postgres-s3"])
def backend_server(request, lensdb_server_factory, tmp_path):
    if request.param == "sqlite":
        return request.param, lensdb_server_factory()
    cluster = request.getfixturevalue("postgres_cluster")
    s3 = request.getfixturevalue("moto_server")
    server = lensdb_server_factory(
        url=cluster.new_database(), blobs=f"s3://{s3.new_bucket()}/lensdb", env=s3.env()
    )
    return request.param, server


def test_acknowledged_writes_survive_sigkill(backend_server) -> None:
    backend, server = backend_server

    def connect():
        return server.connector(use_ssl=False, retry_max_attempts=1)

    ledger = kill_cycles(server, KILLS[backend], connect, threads=8, rnd=random.Random(7))
    report = check_ingest(server.connector(), ledger)
    print(
        f"{backend}: {report['acknowledged']} acknowledged over {KILLS[backend]} kills, "
        f"{len(report['lost'])} lost, {len(report['partial'])} partial, "
        f"{report['in_flight_committed']} unanswered but committed"
    )
    assert report["acknowledged"] > 0
    assert report["lost"] == [], report["lost"][:10]
    assert report["partial"] == {}, list(report["partial"].items())[:10]
    assert report["bad_bytes"] == [], report["bad_bytes"][:10]
    assert report["unexplained"] == [], report["unexplained"][:10]
    server.stop()
    checked = server.cli("check", check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "no row uses" not in checked.stdout, checked.stdout
