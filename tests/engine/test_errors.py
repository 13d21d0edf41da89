"""Statuses are named once (lensdb.errors) and answered as plain JSON integers."""

from __future__ import annotations

import json

from lensdb import Database
from lensdb.errors import LensdbError, QueryError, Status, error_info, response_status


def test_answers_carry_plain_int_statuses(db: Database) -> None:
    add = {"AddEntity": {"class": "Cam", "properties": {"k": 1}, "if_not_found": {"k": ["==", 1]}}}
    response, _ = db.query([add, add])
    assert [type(r["AddEntity"]["status"]) for r in response] == [int, int]
    assert [r["AddEntity"]["status"] for r in response] == [Status.OK, Status.EXISTS]
    assert json.loads(json.dumps(response)) == response
    assert response_status(response) == Status.EXISTS


def test_not_unique_fails_the_transaction_with_its_status(db: Database) -> None:
    db.query([{"AddEntity": {"class": "Cam"}}, {"AddEntity": {"class": "Cam"}}])
    response, _ = db.query(
        [{"AddEntity": {"class": "Other"}}, {"FindEntity": {"with_class": "Cam", "unique": True}}]
    )
    assert isinstance(response, dict)
    assert response["status"] == Status.NOT_UNIQUE and type(response["status"]) is int
    assert response["FailedCommand"] == "FindEntity"
    assert response_status(response) == Status.NOT_UNIQUE
    assert "unique" in error_info(response)
    found, _ = db.query([{"FindEntity": {"with_class": "Other", "results": {"count": True}}}])
    assert found[0]["FindEntity"]["count"] == 0  # all or nothing


def test_client_visible_errors_share_one_base() -> None:
    from lensdb.auth.store import AuthError
    from lensdb.client import DatabaseUnavailable
    from lensdb.gateway.core import QueryFailed
    from lensdb.media import MediaError

    for cls in (QueryError, AuthError, MediaError, DatabaseUnavailable):
        assert issubclass(cls, LensdbError) and cls("x").response() == {"status": -1, "info": "x"}
    failed = QueryFailed({"status": 3, "info": "expecting 1"})
    assert failed.status == Status.NOT_UNIQUE and failed.info == "expecting 1"
    e = QueryError("bad", Status.RESPONSE_TOO_LARGE, command="FindImage")
    assert isinstance(e, LensdbError)
    assert e.response() == {"status": 4, "info": "FindImage: bad", "FailedCommand": "FindImage"}
    assert LensdbError("odd", -2).status == -2  # a code lensdb does not name is kept as is
    assert (
        response_status([{"FindImage": {"status": 0}}, {"AddImage": {"status": -1, "info": "x"}}])
        == -1
    )
    assert (
        error_info([{"FindImage": {"status": 0}}, {"AddImage": {"status": -1, "info": "x"}}])
        == "AddImage: x"
    )
