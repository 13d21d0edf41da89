"""Access rules checked family by family against real `lensdb serve` processes.

VDMS off by default and never an open door; a read-only user changes nothing (every data command
the engine knows, and users, roles and tokens); token expiry and revocation reach live
connections; password guessing is limited per address and per user; media links; CORS; TLS 1.2+;
and no secret in the logs of a full run at DEBUG.
"""

from __future__ import annotations

import json
import re
import secrets
import socket
import ssl
import struct
import subprocess
import time

import httpx
import pytest

from conftest import ADMIN_PASSWORD, LensdbServer
from connector.helpers import add_images, uniqueids
from lensdb.auth import permissions
from lensdb.engine.context import takes_blob
from lensdb.engine.database import HANDLERS
from lensdb.gateway.config import SECRET_FILE
from lensdb.gateway.signing import Signer
from server.rawclient import RawClient
from server.test_server_vdms import run_vdms

NOT_AUTHENTICATED = {"status": -1, "info": "Not Authenticated!"}


def _serve_fails(tmp_path, *args: str, env: dict | None = None) -> str:
    server = LensdbServer(tmp_path / "refused", args, env=env)
    done = subprocess.run(server.command(), capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode != 0
    return done.stderr


# -- VDMS -------------------------------------------------------------------------------------


def test_vdms_is_never_an_open_door(lensdb_server_factory, tmp_path) -> None:
    import os

    env = {**os.environ, "LENSDB_ADMIN_PASSWORD": ADMIN_PASSWORD}
    err = _serve_fails(tmp_path, "--vdms", env=env)
    assert "--vdms-client-ca" in err and "--vdms-unauthenticated" in err
    err = _serve_fails(tmp_path, "--vdms-writes", env=env)
    assert "--vdms-unauthenticated" in err
    err = _serve_fails(tmp_path, env={**env, "LENSDB_VDMS": "1"})
    assert "--vdms-client-ca" in err

    # Off by default: a VDMS client gets nothing.
    plain = lensdb_server_factory(name="default")
    (r,) = run_vdms(plain, [[{"FindEntity": {"class": "X"}}]])
    assert r is None or "exception" in r
    assert "VDMS clients are served" not in plain.log()

    # Named risk: read-only, with a warning at every start.
    server = lensdb_server_factory("--vdms", "--vdms-unauthenticated", name="ro")
    server.connector().query([{"AddEntity": {"class": "VdmsGuarded", "properties": {"k": 1}}}])
    find = [{"FindEntity": {"class": "VdmsGuarded", "results": {"count": ""}}}]
    changes = [
        [{"AddEntity": {"class": "VdmsGuarded", "properties": {"k": 2}}}],
        [{"UpdateEntity": {"class": "VdmsGuarded", "properties": {"k": 3}}}],
        [{"DeleteEntity": {"class": "VdmsGuarded"}}],
        [{"AddDescriptorSet": {"name": "vdms-set", "dimensions": 4}}],
    ]
    replies = run_vdms(server, [find, *changes, find])
    assert replies[0][0]["FindEntity"]["count"] == 1
    for reply in replies[1:-1]:
        assert reply[0]["status"] == -1 and "read-only" in reply[0]["info"], reply
    assert replies[-1][0]["FindEntity"]["count"] == 1
    server.restart()
    warnings = re.findall(
        r"WARNING .*VDMS clients are served \(without credentials: read-only", server.log()
    )
    assert len(warnings) == 2


# -- a read-only user -------------------------------------------------------------------------


def _changing_commands() -> list[str]:
    """Every command of the engine's table that needs more than read permission."""
    out = []
    for name in sorted(HANDLERS):
        need = permissions.required(name)
        if need is not None and need[1] != "read":
            out.append(name)
    return out


ACCESS_CHANGES = [
    {"CreateUser": {"username": "intruder", "password": "pw-intruder", "roles": ["admin"]}},
    {"UpdateUser": {"username": "admin", "password": "taken-over"}},
    {"UpdateUser": {"username": "admin", "roles": ["ro"]}},
    {"UpdateUser": {"username": "admin", "add_tokens": ["adbp_" + "x" * 30]}},
    {"RemoveUser": {"username": "admin"}},
    {"CreateRole": {"name": "mine", "objects": {"create": True}}},
    {"UpdateRole": {"name": "ro", "objects": {"create": True, "update": True}}},
    {"RemoveRole": {"name": "ro"}},
    # Self-service changes of a read-only user: own password, own tokens.
    {"UpdateUser": {"password": "new-pw-of-reader"}},
    {"UpdateUser": {"add_tokens": ["adbp_" + "y" * 30]}},
]


def test_a_read_only_user_changes_nothing(lensdb_server_factory) -> None:
    server = lensdb_server_factory()
    admin = server.connector(use_ssl=False)
    r, _ = admin.query(
        [
            {"CreateRole": {"name": "ro", "objects": {"read": True}}},
            {"CreateUser": {"username": "reader", "password": "reader-pw", "roles": ["ro"]}},
        ]
    )
    assert all(v["status"] == 0 for c in r for v in c.values()), r
    admin.query(
        [
            {"AddEntity": {"_ref": 1, "class": "Kept", "properties": {"k": 1}}},
            {"AddEntity": {"_ref": 2, "class": "Kept", "properties": {"k": 2}}},
            {"AddConnection": {"class": "Link", "src": 1, "dst": 2}},
        ]
    )
    snapshot = _state(admin)
    commands = _changing_commands()
    # The families the issue names are all in the engine's table (a renamed one fails here).
    for needed in ("AddEntity", "UpdateImage", "DeleteBlob", "AddConnection", "CreateIndex"):
        assert needed in commands
    tcp = server.connector(user="reader", password="reader-pw", use_ssl=False)
    rest = server.rest_connector(user="reader", password="reader-pw")
    refused = 0
    for name in commands:
        body: dict = {}
        blobs = [b"\xff\xd8\xff"] if takes_blob(name, body) else []
        for client in (tcp, rest):
            r, _ = client.query([{"FindEntity": {"with_class": "Kept"}}, {name: body}], blobs)
            assert isinstance(r, dict) and r["status"] == -1, (name, r)
            assert "Permission denied" in r["info"] and name in r["info"], (name, r)
            refused += 1
    for cmd in ACCESS_CHANGES:
        r, _ = tcp.query([cmd])
        assert isinstance(r, dict) and "Permission denied" in r["info"], (cmd, r)
        refused += 1
    # GenerateToken changes nothing: it only returns a random string, assigned to no one.
    r, _ = tcp.query([{"GenerateToken": {}}])
    assert r[0]["GenerateToken"]["status"] == 0
    print(f"\nread-only user: {refused} change attempts refused ({len(commands)} data commands)")
    assert _state(admin) == snapshot
    assert (
        server.connector(use_ssl=False).query([{"GetStatus": {}}])[0][0]["GetStatus"]["status"] == 0
    )


def _state(admin) -> str:
    data, _ = admin.query(
        [
            {"FindEntity": {"with_class": "Kept", "results": {"all_properties": True}}},
            {"FindConnection": {"with_class": "Link", "results": {"count": True}}},
            {"GetSchema": {}},
            {"GetIndexes": {}},
        ]
    )
    users, _ = admin.query(
        [{"GetUserDetails": {"username": "admin"}}, {"GetUserDetails": {"username": "reader"}}]
    )
    assert isinstance(data, list) and isinstance(users, list), (data, users)
    return json.dumps([data, users], sort_keys=True)


# -- tokens on live connections -----------------------------------------------------------------


def test_token_expiry_and_revocation_reach_live_connections(lensdb_server_factory) -> None:
    server = lensdb_server_factory()
    server.cli("users", "add", "tok", "--password", "tok-pw")
    short = server.cli("tokens", "create", "tok", "--expires-in", "3").stdout.strip()
    long = server.cli("tokens", "create", "tok").stdout.strip()
    with RawClient(server.port) as c:
        r, _ = c.query([{"Authenticate": {"token": short}}])
        session = r[0]["Authenticate"]
        assert session["session_token_expires_in"] <= 3
        assert c.query([{"GetStatus": {}}], token=session["session_token"])[0][0]["GetStatus"]
        time.sleep(3.5)
        # Same connection, same session: over with the token.
        assert c.query([{"GetStatus": {}}], token=session["session_token"])[0] == NOT_AUTHENTICATED
        r, _ = c.query([{"RefreshToken": {"refresh_token": session["refresh_token"]}}])
        assert r[0]["RefreshToken"]["status"] == -1
    with RawClient(server.port) as c:
        r, _ = c.query([{"Authenticate": {"token": long}}])
        session = r[0]["Authenticate"]["session_token"]
        assert c.query([{"GetStatus": {}}], token=session)[0][0]["GetStatus"]["status"] == 0
        server.cli("tokens", "revoke", long)
        assert c.query([{"GetStatus": {}}], token=session)[0] == NOT_AUTHENTICATED


# -- password guessing --------------------------------------------------------------------------


class _From(RawClient):
    """A raw client whose connection comes from another loopback address."""

    def __init__(self, port: int, source: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), 10, source_address=(source, 0))
        self.sock.sendall(struct.pack("<III", 8, 1, 1))
        assert self.recv_frame() == struct.pack("<II", 1, 1)


def _login(port: int, source: str, user: str, password: str) -> tuple[dict, float]:
    with _From(port, source) as c:
        t = time.perf_counter()
        r = c.authenticate(user, password)
        return r, time.perf_counter() - t


def test_password_guessing_is_limited_but_the_owner_gets_in(lensdb_server_factory) -> None:
    # One a minute after the burst of 10, so that slow hashes on a busy machine drain nothing.
    server = lensdb_server_factory(env={"LENSDB_LOGIN_FAILURES_PER_MINUTE": "1"})
    attacker, owner, other = "127.0.0.1", "127.0.0.2", "127.0.0.3"
    for i in range(10):
        r, _ = _login(server.port, attacker, "admin", f"guess-{i}")
        assert r["status"] == -1 and "wrong username or password" in r["info"], r
    r, took = _login(server.port, attacker, "admin", "guess-10")
    assert "Too many failed logins" in r["info"], r
    assert took < 0.05  # refused before any hash
    # The right password from the attacker's address is refused too: the address is spent.
    r, _ = _login(server.port, attacker, "admin", ADMIN_PASSWORD)
    assert "Too many failed logins from this address" in r["info"]
    # The owner, elsewhere, gets in while the account is under attack.
    r, _ = _login(server.port, owner, "admin", ADMIN_PASSWORD)
    assert r["status"] == 0 and r["session_token"]
    # A new address guessing this account gets one try, then is refused for this user.
    r, _ = _login(server.port, other, "admin", "guess-other")
    assert "wrong username or password" in r["info"]
    r, _ = _login(server.port, other, "admin", "guess-other-2")
    assert "Too many failed logins for this user" in r["info"]
    # ...but may still log in to its own account.
    server.cli("users", "add", "carl", "--password", "carl-pw")
    r, _ = _login(server.port, other, "carl", "carl-pw")
    assert r["status"] == 0
    # Over REST the client's address counts the same way.
    rest = f"http://127.0.0.1:{server.http_port}/api/"
    q = json.dumps([{"Authenticate": {"username": "admin", "password": "rest-guess"}}])
    reply = httpx.post(rest, files={"query": (None, q)}).json()["json"]
    assert "Too many failed logins" in reply[0]["Authenticate"]["info"]
    assert server.running()


# -- media links, CORS ---------------------------------------------------------------------------


def test_media_links_refuse_tampering_expiry_other_ids_and_traversal(lensdb_server_factory) -> None:
    server = lensdb_server_factory()
    client = server.connector()
    add_images(client, 2, "links", boxes=True)
    ids = uniqueids(client, {"dataset": ["==", "links"]})
    signer = Signer((server.data_dir / SECRET_FILE).read_text().strip().encode())
    http = httpx.Client(base_url=f"http://127.0.0.1:{server.http_port}")
    url = signer.sign(f"/media/images/{ids[0]}", 60)
    assert http.get(url).status_code == 200
    refused = {
        "tampered signature": url[:-2] + ("AA" if not url.endswith("AA") else "BB"),
        "longer expiry": re.sub(r"exp=(\d+)", lambda m: f"exp={int(m[1]) + 3600}", url),
        "expired": signer.sign(f"/media/images/{ids[0]}", 60, now=time.time() - 120),
        "another object's id": url.replace(ids[0], ids[1]),
        "another kind": url.replace("/media/images/", "/media/blobs/"),
        "added parameter": url + "&width=4000",
        "no signature": url.split("?")[0],
    }
    for why, bad in refused.items():
        r = http.get(bad)
        assert r.status_code in (401, 403), (why, r.status_code)
        assert not r.headers.get("content-type", "").startswith("image/"), why
    for path in (
        "/media/images/..%2F..%2Fauth.sqlite3",
        "/media/images/../../auth.sqlite3",
        "/media/images/by/guid/..%2F..%2F..%2Fetc%2Fpasswd",
        "/media/blobs/%2e%2e%2fgateway.secret",
        "/media/../gateway.secret",
    ):
        for target in (path, signer.sign(path, 60)):
            r = http.get(target)
            assert r.status_code in (400, 401, 403, 404), (target, r.status_code)
            assert b"root:" not in r.content and b"SQLite format" not in r.content
            assert signer._secret not in r.content


def test_cors_is_never_star_outside_dev(lensdb_server_factory, tmp_path) -> None:
    import os

    env = {**os.environ, "LENSDB_ADMIN_PASSWORD": ADMIN_PASSWORD}
    assert "--dev" in _serve_fails(tmp_path, "--cors-origin", "*", env=env)
    assert "--dev" in _serve_fails(
        tmp_path, env={**env, "LENSDB_CORS_ORIGINS": "http://a.example,*"}
    )
    server = lensdb_server_factory("--cors-origin", "http://ok.example")
    add_images(server.connector(), 1, "cors", boxes=False)
    uid = uniqueids(server.connector(), {"dataset": ["==", "cors"]})[0]
    signer = Signer((server.data_dir / SECRET_FILE).read_text().strip().encode())
    url = f"http://127.0.0.1:{server.http_port}" + signer.sign(f"/media/images/{uid}", 60)
    for origin in ("http://evil.example", "null", "http://ok.example.evil.example"):
        assert (
            "access-control-allow-origin" not in httpx.get(url, headers={"Origin": origin}).headers
        )
    for path in ("/api/", "/labelstudio/tasks", "/openapi.json"):
        r = httpx.options(
            f"http://127.0.0.1:{server.http_port}{path}",
            headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
        )
        assert r.headers.get("access-control-allow-origin") in (None, "http://ok.example"), path


# -- TLS ----------------------------------------------------------------------------------------


def _tls_client(maximum: ssl.TLSVersion) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_ciphers("ALL:@SECLEVEL=0")  # let this client offer TLS 1.1 at all
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.maximum_version = maximum
    return ctx


def _handshake(port: int, ctx: ssl.SSLContext, hello: bool) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        if hello:
            raw.sendall(struct.pack("<III", 8, 1, 2))
            assert raw.recv(12) == struct.pack("<III", 8, 1, 2)
        try:
            with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                return tls.version() or "?"
        except (ssl.SSLError, ConnectionResetError) as e:
            return f"refused: {e}"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # TLS 1.0 and 1.1, on purpose
def test_tls_below_1_2_is_refused(lensdb_server_factory) -> None:
    server = lensdb_server_factory("--http-tls")
    for port, hello in ((server.port, True), (server.http_port, False)):
        assert _handshake(port, _tls_client(ssl.TLSVersion.TLSv1_2), hello) == "TLSv1.2"
        for old in (ssl.TLSVersion.TLSv1_1, ssl.TLSVersion.TLSv1):
            got = _handshake(port, _tls_client(old), hello)
            assert got.startswith("refused"), (port, old, got)
    assert server.running()


# -- secrets and logs ---------------------------------------------------------------------------


class _VerboseServer(LensdbServer):
    def command(self) -> list[str]:
        cmd = super().command()
        return [*cmd[:3], "--verbose", *cmd[3:]]  # `lensdb -v serve ...`: DEBUG logging


def test_no_secret_in_the_logs_of_a_full_run(tmp_path) -> None:
    webhook = "whsec-" + secrets.token_hex(12)
    server = _VerboseServer(
        tmp_path / "data",
        ["--vdms", "--vdms-unauthenticated"],
        env={"LENSDB_WEBHOOK_SECRET": webhook, "LENSDB_LOGIN_FAILURES_PER_MINUTE": "10"},
    ).start()
    seen: list[str] = [ADMIN_PASSWORD, webhook]
    try:
        admin = server.connector()
        add_images(admin, 2, "secret", boxes=True)
        user_pw = "user-pw-" + secrets.token_hex(8)
        admin.query([{"CreateUser": {"username": "sue", "password": user_pw, "roles": ["admin"]}}])
        token = admin.query([{"GenerateToken": {}}])[0][0]["GenerateToken"]["token"]
        admin.query([{"UpdateUser": {"username": "sue", "add_tokens": [token]}}])
        seen += [user_pw, token]
        with RawClient(server.port) as c:
            s = c.authenticate("sue", user_pw)
            seen += [s["session_token"], s["refresh_token"]]
            r, _ = c.query([{"RefreshToken": {"refresh_token": s["refresh_token"]}}])
            seen += [r[0]["RefreshToken"]["session_token"], r[0]["RefreshToken"]["refresh_token"]]
            r, _ = c.query([{"Authenticate": {"token": token}}])
            seen.append(r[0]["Authenticate"]["session_token"])
            wrong = "wrong-pw-" + secrets.token_hex(8)
            with _From(server.port, "127.0.0.9") as guesser:
                for _ in range(12):  # up to the limit and past it
                    guesser.authenticate("sue", wrong)
            seen.append(wrong)
            new_pw = "changed-" + secrets.token_hex(8)
            c.query(
                [{"UpdateUser": {"username": "sue", "password": new_pw}}],
                token=r[0]["Authenticate"]["session_token"],
            )
            seen.append(new_pw)
        rest = server.rest_connector(user="admin")
        rest.query([{"FindImage": {"results": {"count": True}}}])
        seen.append(rest.shared_data.session.session_token)
        http = httpx.Client(base_url=f"http://127.0.0.1:{server.http_port}")
        auth = {"Authorization": f"Bearer {rest.shared_data.session.session_token}"}
        tasks = http.get("/labelstudio/tasks", headers=auth).json()
        link = tasks[0]["data"]["image"]
        assert http.get(link).status_code == 200
        seen.append(link.split("sig=")[1])
        http.post(
            "/labelstudio/webhook",
            headers={"X-Lensdb-Webhook-Secret": webhook},
            json={"action": "PROJECT_UPDATED", "project": {"id": 1}},
        )
        http.post("/labelstudio/webhook", headers={"X-Lensdb-Webhook-Secret": webhook[:-1] + "x"})
        seen.append((server.data_dir / SECRET_FILE).read_text().strip())
        run_vdms(server, [[{"FindEntity": {"class": "X"}}]])
    finally:
        server.stop()
    log = server.log()
    assert "DEBUG" in log and "lensdb ready" in log
    leaked = [s for s in seen if s and s in log]
    print(f"\nsearched a {len(log.splitlines())}-line DEBUG log for {len(seen)} secrets")
    assert not leaked, f"secrets in the log: {[s[:8] + '...' for s in leaked]}"
