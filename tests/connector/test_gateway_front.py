"""The raw /media front (gateway/front.py) answers exactly as the Starlette /media routes do.

In-process on purpose: the same app is asked each request twice, once with its front and once
without (Starlette's own entry), and the two answers must be equal byte for byte: status,
every header in order, body. Over a socket only one of the two ways can be reached. The
gateway tests on a real server (test_gateway.py) check the answers themselves.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from starlette.applications import Starlette

from lensdb import Database
from lensdb.auth.service import AuthService
from lensdb.auth.store import AuthStore
from lensdb.gateway.config import SECRET_FILE
from lensdb.gateway.signing import Signer
from lensdb.server.context import ServerContext
from lensdb.server.dispatch import QueryHandler
from lensdb.server.extensions import Front
from lensdb.server.http import create_app
from lensdb.settings import Settings

from .helpers import jpeg

ALLOWED = "http://labeling.example:8080"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("front") / "db"
    db = Database(folder)
    store = AuthStore(folder)
    store.bootstrap("pw")
    auth = AuthService(store)
    with ThreadPoolExecutor(4) as pool:
        ctx = ServerContext(
            db,
            auth,
            QueryHandler(db, auth),
            pool,
            folder,
            settings=Settings(cors_origins=(ALLOWED,)),
        )
        app = create_app(ctx)
        r, _ = db.query(
            [
                {"AddImage": {"properties": {"n": 1}}},
                {"AddBlob": {"properties": {"n": 2}}},
                {"FindImage": {"uniqueids": True, "blobs": False}},
                {"FindBlob": {"uniqueids": True, "blobs": False}},
            ],
            [jpeg(), b"some blob bytes"],
        )
        image = r[2]["FindImage"]["entities"][0]["_uniqueid"]
        blob = r[3]["FindBlob"]["entities"][0]["_uniqueid"]
        yield app, image, blob, folder
    db.close()
    store.close()


def _request(app, method: str, url: str, headers: dict) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://lensdb") as c:
            return await c.request(method, url, headers=headers)

    return asyncio.run(go())


def _both(app, method: str, url: str, headers: dict | None = None) -> tuple[bool, httpx.Response]:
    """(whether the front answered, its answer), after checking the routes answer the same."""
    (front,) = app.fronts
    answered = []

    async def counted(scope, send) -> bool:
        answered.append(await front.answer(scope, send))
        return answered[-1]

    app.fronts = (Front(front.prefix, counted),)
    try:
        fast = _request(app, method, url, headers or {})
    finally:
        app.fronts = (front,)

    async def routes_only(scope, receive, send) -> None:
        await Starlette.__call__(app, scope, receive, send)

    slow = _request(routes_only, method, url, headers or {})
    assert (fast.status_code, fast.headers.raw, fast.content) == (
        slow.status_code,
        slow.headers.raw,
        slow.content,
    ), f"{method} {url} {headers}"
    return answered == [True], fast


def test_front_answers_as_the_routes_do(served) -> None:
    app, image, blob, folder = served
    signer = Signer((folder / SECRET_FILE).read_text().strip().encode())
    link = signer.sign(f"/media/images/{image}", 600)
    answered, full = _both(app, "GET", link)
    assert answered and full.status_code == 200 and full.content == jpeg()
    etag = full.headers["etag"]
    size = len(full.content)
    cases = [
        ("HEAD", {}, 200),
        ("GET", {"Range": "bytes=0-9"}, 206),
        ("GET", {"Range": "bytes=-10"}, 206),
        ("GET", {"Range": f"bytes=0-{size - 1}"}, 200),
        ("GET", {"Range": f"bytes={size}-"}, 416),
        ("GET", {"Range": "bytes=0-9", "If-Range": etag}, 206),
        ("GET", {"Range": "bytes=0-9", "If-Range": '"other"'}, 200),
        ("GET", {"If-None-Match": etag}, 304),
        ("GET", {"If-None-Match": f'"x", W/{etag}'}, 304),
        ("GET", {"If-None-Match": '"other"'}, 200),
        ("GET", {"Origin": ALLOWED}, 200),
        ("GET", {"Origin": "http://evil.example", "Range": "bytes=5-"}, 206),
        ("GET", {"Origin": ALLOWED, "If-None-Match": etag}, 304),
    ]
    for method, headers, status in cases:
        answered, r = _both(app, method, link, headers)
        assert answered and r.status_code == status, (method, headers)
    blob_link = signer.sign(f"/media/blobs/{blob}", 600)
    answered, r = _both(app, "GET", blob_link, {"Range": "bytes=5-8"})
    assert answered and r.content == b"blob"


def test_front_leaves_the_rest_to_the_routes(served) -> None:
    app, image, _, folder = served
    signer = Signer((folder / SECRET_FILE).read_text().strip().encode())
    declined = [
        ("GET", f"/media/images/{image}", {}, 401),  # no session, no link
        ("GET", signer.sign(f"/media/images/{image}", 600)[:-2] + "xx", {}, 403),
        ("GET", signer.sign(f"/media/images/{image}", -10), {}, 403),  # expired
        ("GET", signer.sign("/media/images/2.0.999999", 600), {}, 404),
        ("GET", signer.sign(f"/media/images/{image}", 600, {"width": 16}), {}, 200),
        ("GET", signer.sign(f"/media/boxes/{image}", 600), {}, 404),
        ("GET", f"/media/images/{image}", {"Authorization": "Bearer nope"}, 401),
    ]
    for method, url, headers, status in declined:
        answered, r = _both(app, method, url, headers)
        assert not answered and r.status_code == status, (url, headers)


def test_front_serves_sessions(served) -> None:
    app, image, _, _ = served
    login = '[{"Authenticate": {"username": "admin", "password": "pw"}}]'

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://lensdb") as c:
            return await c.post("/api/", files={"query": (None, login)})

    token = asyncio.run(go()).json()["json"][0]["Authenticate"]["session_token"]
    answered, r = _both(app, "GET", f"/media/images/{image}", {"Authorization": f"Bearer {token}"})
    assert answered and r.status_code == 200 and "no-cache" in r.headers["cache-control"]
