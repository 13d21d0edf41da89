"""Authentication, sessions, tokens and roles as the SDK sees them."""

from __future__ import annotations

import re
import time

import pytest

from .rawclient import RawClient

NOT_AUTHENTICATED = {"status": -1, "info": "Not Authenticated!"}


def _admin_query(server, q):
    r, _ = server.connector().query(q)
    return r


def _make_user(
    server, username: str, role: str, perms: dict, password: str = "pw-" + "x" * 8
) -> str:
    r = _admin_query(
        server,
        [
            {"CreateRole": {"name": role, **perms}},
            {
                "CreateUser": {
                    "username": username,
                    "password": password,
                    "roles": [role],
                    "email": f"{username}@x",
                }
            },
        ],
    )
    assert isinstance(r, list) and all(list(c.values())[0]["status"] == 0 for c in r), r
    return password


def test_wrong_password_and_unknown_user(lensdb_server) -> None:
    with pytest.raises(Exception, match="Authentication failed"):
        lensdb_server.connector(password="not-it").query([{"GetStatus": {}}])
    with pytest.raises(Exception, match="Authentication failed"):
        lensdb_server.connector(user="nobody", password="x").query([{"GetStatus": {}}])


def test_unauthenticated_queries_get_the_exact_answer(lensdb_server) -> None:
    with RawClient(lensdb_server.port) as c:
        assert c.query([{"GetStatus": {}}]) == (NOT_AUTHENTICATED, [])
        assert c.query([{"FindEntity": {}}], token="adbs_forged") == (NOT_AUTHENTICATED, [])
        assert c.query([{"GenerateToken": {}}]) == (NOT_AUTHENTICATED, [])
        s = c.authenticate("admin", lensdb_server.admin_password)
        assert s["status"] == 0 and s["session_token"].startswith("adbs_")
        assert s["refresh_token"].startswith("adbr_")
        assert isinstance(s["session_token_expires_in"], int) and isinstance(
            s["refresh_token_expires_in"], int
        )
        r, _ = c.query([{"GetStatus": {}}], token=s["session_token"])
        assert r[0]["GetStatus"]["status"] == 0
        # Re-authenticating on the same connection gives a new, working session.
        s2 = c.authenticate("admin", lensdb_server.admin_password)
        assert s2["session_token"] != s["session_token"]
        r, _ = c.query([{"GetStatus": {}}], token=s2["session_token"])
        assert r[0]["GetStatus"]["status"] == 0
        r, _ = c.query([{"Authenticate": {"username": "admin", "password": "bad"}}])
        assert r[0]["Authenticate"]["status"] == -1 and r[0]["Authenticate"]["info"]


def test_session_refresh_and_expiry_mid_run(lensdb_server_factory, monkeypatch) -> None:
    server = lensdb_server_factory("--session-ttl", "11", "--refresh-ttl", "14")
    client = server.connector()
    client.query([{"GetStatus": {}}])
    first = client.shared_data.session

    # 1. The SDK refreshes on its own once the session is within 10 s of expiry.
    time.sleep(1.3)
    r, _ = client.query([{"FindEntity": {"results": {"count": True}}}])
    assert r[0]["FindEntity"]["status"] == 0
    second = client.shared_data.session
    assert (
        second.session_token != first.session_token and second.refresh_token != first.refresh_token
    )

    # 2. A client that does not refresh in time gets "Not Authenticated!", refreshes, retries.
    monkeypatch.setenv("SESSION_EXPIRY_OFFSET_SEC", "-1000")
    time.sleep(11.3)
    with RawClient(server.port) as raw:
        assert raw.query([{"GetStatus": {}}], token=second.session_token)[0] == NOT_AUTHENTICATED
    r, _ = client.query([{"GetStatus": {}}])
    assert r[0]["GetStatus"]["status"] == 0
    third = client.shared_data.session
    assert third.session_token != second.session_token

    # 3. Once the refresh token has expired too, the SDK logs in again with its password.
    time.sleep(14.3)
    with RawClient(server.port) as raw:
        r, _ = raw.query([{"RefreshToken": {"refresh_token": third.refresh_token}}])
        assert r[0]["RefreshToken"]["status"] == -1
    r, _ = client.query([{"GetStatus": {}}])
    assert r[0]["GetStatus"]["status"] == 0
    assert client.shared_data.session.session_token != third.session_token


def test_role_without_create_cannot_add(lensdb_server) -> None:
    pw = _make_user(lensdb_server, "reader1", "readonly1", {"objects": {"read": True}})
    _admin_query(lensdb_server, [{"AddEntity": {"class": "Guarded1", "properties": {"k": 0}}}])
    bob = lensdb_server.connector(user="reader1", password=pw)
    r, _ = bob.query([{"FindEntity": {"with_class": "Guarded1", "results": {"count": True}}}])
    assert r[0]["FindEntity"]["count"] == 1
    r, _ = bob.query(
        [
            {"FindEntity": {"with_class": "Guarded1", "results": {"count": True}}},
            {"AddEntity": {"class": "Guarded1", "properties": {"k": 1}}},
        ]
    )
    assert isinstance(r, dict) and r["status"] == -1
    assert "Permission denied" in r["info"] and "AddEntity" in r["info"]
    r = _admin_query(
        lensdb_server, [{"FindEntity": {"with_class": "Guarded1", "results": {"count": True}}}]
    )
    assert r[0]["FindEntity"]["count"] == 1  # nothing was added
    # Access control needs the users permission too.
    r, _ = bob.query([{"CreateUser": {"username": "sneaky", "password": "x", "roles": ["admin"]}}])
    assert isinstance(r, dict) and "Permission denied" in r["info"]


def test_role_change_applies_to_a_connected_user(lensdb_server) -> None:
    pw = _make_user(lensdb_server, "editor2", "growing2", {"objects": {"read": True}})
    bob = lensdb_server.connector(user="editor2", password=pw)
    add = [{"AddEntity": {"class": "Grown2", "properties": {"k": 1}}}]
    r, _ = bob.query(add)
    assert isinstance(r, dict) and "Permission denied" in r["info"]
    session = bob.shared_data.session.session_token

    r = _admin_query(
        lensdb_server, [{"UpdateRole": {"name": "growing2", "entities": {"create": True}}}]
    )
    assert r[0]["UpdateRole"]["status"] == 0
    r, _ = bob.query(add)
    assert r[0]["AddEntity"]["status"] == 0
    assert bob.shared_data.session.session_token == session  # same session, new rights

    _admin_query(
        lensdb_server, [{"UpdateRole": {"name": "growing2", "entities": {"create": False}}}]
    )
    r, _ = bob.query(add)
    assert isinstance(r, dict) and "Permission denied" in r["info"]


def test_user_change_and_removal_end_sessions(lensdb_server) -> None:
    pw = _make_user(lensdb_server, "carol3", "r3", {"objects": {"read": True}})
    carol = lensdb_server.connector(user="carol3", password=pw)
    carol.query([{"GetStatus": {}}])
    old = carol.shared_data.session.session_token

    # Email change: session ends, the SDK logs in again with the same password.
    r = _admin_query(lensdb_server, [{"UpdateUser": {"username": "carol3", "email": "new@x"}}])
    assert r[0]["UpdateUser"]["status"] == 0
    with RawClient(lensdb_server.port) as raw:
        assert raw.query([{"GetStatus": {}}], token=old)[0] == NOT_AUTHENTICATED
    r, _ = carol.query([{"GetStatus": {}}])
    assert r[0]["GetStatus"]["status"] == 0 and carol.shared_data.session.session_token != old

    # Password change: the old password no longer works, so the client fails cleanly.
    _admin_query(lensdb_server, [{"UpdateUser": {"username": "carol3", "password": "changed-pw"}}])
    with pytest.raises(Exception, match="Authentication failed"):
        carol.query([{"GetStatus": {}}])
    fresh = lensdb_server.connector(user="carol3", password="changed-pw")
    assert fresh.query([{"GetStatus": {}}])[0][0]["GetStatus"]["status"] == 0

    _admin_query(lensdb_server, [{"RemoveUser": {"username": "carol3"}}])
    with pytest.raises(Exception, match="Authentication failed"):
        fresh.query([{"GetStatus": {}}])


def test_generated_tokens_assign_revoke_and_details(lensdb_server) -> None:
    _make_user(lensdb_server, "dave4", "r4", {"objects": {"read": True}})
    r = _admin_query(lensdb_server, [{"GenerateToken": {}}])
    token = r[0]["GenerateToken"]["token"]
    assert token.startswith("adbp_") and len(token) >= 30
    r = _admin_query(lensdb_server, [{"UpdateUser": {"username": "dave4", "add_tokens": [token]}}])
    assert r[0]["UpdateUser"]["status"] == 0
    details = _admin_query(lensdb_server, [{"GetUserDetails": {"username": "dave4"}}])[0][
        "GetUserDetails"
    ]
    assert details["tokens"] == [token[:13]] and details["roles"] == ["r4"]

    dave = lensdb_server.connector(user=None, token=token)
    assert dave.query([{"GetStatus": {}}])[0][0]["GetStatus"]["status"] == 0
    # Revoke by the listed prefix while dave is connected: his session ends and re-login fails.
    r = _admin_query(
        lensdb_server, [{"UpdateUser": {"username": "dave4", "remove_tokens": [token[:13]]}}]
    )
    assert r[0]["UpdateUser"]["status"] == 0
    with pytest.raises(Exception, match="revoked"):
        dave.query([{"GetStatus": {}}])


def test_expired_and_cli_revoked_tokens(lensdb_server) -> None:
    _make_user(lensdb_server, "erin5", "r5", {"objects": {"read": True}})
    short = lensdb_server.cli("tokens", "create", "erin5", "--expires-in", "1").stdout.strip()
    long = lensdb_server.cli("tokens", "create", "erin5").stdout.strip()
    assert short.startswith("adbp_") and long.startswith("adbp_")
    erin = lensdb_server.connector(user=None, token=long)
    assert erin.query([{"GetStatus": {}}])[0][0]["GetStatus"]["status"] == 0
    time.sleep(1.2)
    with pytest.raises(Exception, match="expired"):
        lensdb_server.connector(user=None, token=short).query([{"GetStatus": {}}])
    # Revoked from the shell while the server runs: the running server notices at once.
    lensdb_server.cli("tokens", "revoke", long)
    with pytest.raises(Exception, match="revoked"):
        erin.query([{"GetStatus": {}}])


def test_cli_password_change_reaches_the_running_server(lensdb_server) -> None:
    lensdb_server.cli("users", "add", "frank6", "--password", "one-pw")
    frank = lensdb_server.connector(user="frank6", password="one-pw")
    frank.query([{"GetStatus": {}}])
    listed = lensdb_server.cli("users", "list").stdout
    assert "frank6" in listed and "admin" in listed
    lensdb_server.cli("users", "passwd", "frank6", "--password", "two-pw")
    with pytest.raises(Exception, match="Authentication failed"):
        frank.query([{"GetStatus": {}}])
    assert lensdb_server.connector(user="frank6", password="two-pw").query([{"GetStatus": {}}])[0]
    lensdb_server.cli("users", "remove", "frank6")
    assert "frank6" not in lensdb_server.cli("users", "list").stdout


def test_access_and_data_commands_do_not_mix(lensdb_server) -> None:
    r = _admin_query(lensdb_server, [{"GenerateToken": {}}, {"FindEntity": {}}])
    assert isinstance(r, dict) and r["status"] == -1
    r = _admin_query(lensdb_server, [{"CreateRole": {"name": "bad7", "objects": {"fly": True}}}])
    assert isinstance(r, dict) and "unknown action" in r["info"]
    # A failing command rolls back the earlier ones of the same query.
    r = _admin_query(
        lensdb_server,
        [
            {"CreateRole": {"name": "ok7", "objects": {"read": True}}},
            {"CreateUser": {"username": "g7", "password": "p", "roles": ["missing7"]}},
        ],
    )
    assert isinstance(r, dict) and "missing7" in r["info"]
    r = _admin_query(lensdb_server, [{"CreateRole": {"name": "ok7", "objects": {"read": True}}}])
    assert r[0]["CreateRole"]["status"] == 0


def test_generated_admin_password_is_printed_once(lensdb_server_factory) -> None:
    server = lensdb_server_factory(admin_password="")
    found = re.search(r"Created user 'admin' with password: (\S+)", server.log())
    assert found, server.log()
    password = found.group(1)
    assert (
        server.connector(password=password).query([{"GetStatus": {}}])[0][0]["GetStatus"]["status"]
        == 0
    )
    server.restart()
    assert server.log().count("Created user 'admin'") == 1
    assert (
        server.connector(password=password).query([{"GetStatus": {}}])[0][0]["GetStatus"]["status"]
        == 0
    )
