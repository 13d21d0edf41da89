"""The ASGI app in-process: REST details and the route-mounting hook for later layers."""

from __future__ import annotations

import asyncio
import base64
import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from lensdb import Database
from lensdb.auth.service import AuthService
from lensdb.auth.store import AuthStore
from lensdb.server import extensions
from lensdb.server.context import ServerContext
from lensdb.server.dispatch import QueryHandler
from lensdb.server.http import create_app


class AppClient:
    """A synchronous front for httpx's in-process ASGI transport."""

    def __init__(self, app) -> None:
        self.app = app

    def request(self, method: str, url: str, **kw) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://lensdb") as c:
                return await c.request(method, url, **kw)

        return asyncio.run(go())

    def get(self, url: str, **kw) -> httpx.Response:
        return self.request("GET", url, **kw)

    def post(self, url: str, **kw) -> httpx.Response:
        return self.request("POST", url, **kw)


@pytest.fixture
def context(tmp_path):
    db = Database(tmp_path / "db")
    store = AuthStore(tmp_path / "db")
    store.bootstrap("pw")
    auth = AuthService(store)
    with ThreadPoolExecutor(4) as pool:
        yield ServerContext(
            db, auth, QueryHandler(db, auth), pool, tmp_path / "db", max_message_bytes=2**20
        )
    db.close()
    store.close()


def _login(client: AppClient) -> dict:
    q = json.dumps([{"Authenticate": {"username": "admin", "password": "pw"}}])
    r = client.post("/api/", files={"query": (None, q)})
    return {"Authorization": "Bearer " + r.json()["json"][0]["Authenticate"]["session_token"]}


def test_route_factories_are_mounted_and_documented(context) -> None:
    seen = []

    def hello_routes(ctx: ServerContext):
        seen.append(ctx)

        async def hello(request):
            user = ctx.auth.principal(request.headers.get("x-session"))
            return PlainTextResponse(f"hello {user.username if user else 'stranger'}")

        return [Route("/hello", hello)]

    hello_routes.openapi_paths = {"/hello": {"get": {"summary": "Say hello"}}}
    extensions.route_factory(hello_routes)
    try:
        client = AppClient(create_app(context))
    finally:
        extensions.unregister(hello_routes)
    assert seen == [context]
    assert client.get("/hello").text == "hello stranger"
    token = _login(client)["Authorization"].split()[1]
    assert client.get("/hello", headers={"x-session": token}).text == "hello admin"
    assert "/hello" in client.get("/openapi.json").json()["paths"]
    assert "/hello" not in [r.path for r in create_app(context).routes]


def test_browser_style_blob_parts_and_json_bodies(context) -> None:
    client = AppClient(create_app(context))
    headers = _login(client)
    add = json.dumps([{"AddBlob": {"properties": {"n": 1}}}, {"AddBlob": {"properties": {"n": 2}}}])
    r = client.post(
        "/api",
        headers=headers,
        files=[
            ("query", (None, add)),
            ("blobs", ("a.jpg", b"first", "image/jpeg")),
            ("blobs", ("b.bin", b"second", "application/octet-stream")),
        ],
    )
    assert r.status_code == 200 and [c["AddBlob"]["status"] for c in r.json()["json"]] == [0, 0]
    find = [{"FindBlob": {"blobs": True, "results": {"sort": "n"}}}]
    r = client.post(
        "/api/", headers={**headers, "Content-Type": "application/json"}, content=json.dumps(find)
    )
    assert [base64.b64decode(b) for b in r.json()["blobs"]] == [b"first", b"second"]


def test_request_errors(context) -> None:
    client = AppClient(create_app(context))
    assert client.post("/api/", data={"nothing": "here"}).status_code == 400
    assert (
        client.post("/api/", content=b"x", headers={"Content-Type": "text/plain"}).status_code
        == 400
    )
    files = {"query": (None, "[]"), "blobs": ("b", b"\0" * (2**20 + 10))}
    big = client.post("/api/", files=files, headers=_login(client))
    assert big.status_code == 413
    # Without a session, a body too big for a login is not read: the SDK logs in and resends.
    anonymous = client.post("/api/", files=files)
    assert anonymous.status_code == 200 and anonymous.json()["json"]["info"] == "Not Authenticated!"
    assert client.get("/api/").status_code == 405
