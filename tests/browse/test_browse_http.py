"""/browse over HTTP (httpx against a real `lensdb serve`): access, login, filters, paging, roles."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import httpx
import pytest

from .conftest import ANNOTATION, LS_URL, Browsed

PASSWORD = "admin-test-password"


@contextlib.contextmanager
def _login(b: Browsed, **fields: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=b.base, follow_redirects=False) as client:
        r = client.post("/browse/login", data={"next": "/browse", **fields})
        assert r.status_code == 303, r.text
        assert r.headers["location"] == "/browse"
        yield client


@pytest.fixture(scope="module")
def admin(browsed: Browsed):
    with _login(browsed, username="admin", password=PASSWORD) as client:
        yield client


def shown(html: str) -> list[str]:
    """The uniqueids of the grid's cards, in order."""
    return re.findall(r'class="card" data-uniqueid="([^"]+)"', html)


def next_link(html: str) -> str | None:
    m = re.search(r'<a href="([^"]+)" rel="next">', html)
    return m.group(1).replace("&amp;", "&") if m else None


def test_unauthenticated_is_sent_to_the_login_form(browsed: Browsed) -> None:
    with httpx.Client(base_url=browsed.base) as client:
        r = client.get("/browse", params={"dataset": "alpha"})
        assert r.status_code == 303
        assert r.headers["location"] == "/browse/login?next=%2Fbrowse%3Fdataset%3Dalpha"
        r = client.get(f"/browse/image/{browsed.uids[0]}")
        assert r.status_code == 303 and r.headers["location"].startswith("/browse/login")
        r = client.get(f"/browse/thumb/{browsed.uids[0]}", params={"width": 100})
        assert r.status_code == 401 and "Log in" in r.json()["info"]
        # A forged cookie is no session.
        client.cookies.set("lensdb_browse", "made-up")
        assert client.get("/browse").status_code == 303
        form = client.get("/browse/login", params={"next": "https://evil.example/"})
        assert form.status_code == 200 and 'name="next" value="/browse"' in form.text


def test_wrong_password_is_refused_with_a_message(browsed: Browsed) -> None:
    with httpx.Client(base_url=browsed.base) as client:
        r = client.post("/browse/login", data={"username": "admin", "password": "nope"})
        assert r.status_code == 401
        assert "wrong username or password" in r.text and "lensdb_browse" not in r.headers.get(
            "set-cookie", ""
        )


def test_token_login_and_logout(browsed: Browsed) -> None:
    token = browsed.server.cli("tokens", "create", "admin").stdout.strip()
    with _login(browsed, token=token) as client:
        r = client.get("/browse")
        assert r.status_code == 200 and shown(r.text) == browsed.uids
        assert "admin" in r.text and r.headers["server-timing"].startswith("app;dur=")
        r = client.post("/browse/logout")
        assert r.status_code == 303
        assert client.get("/browse").status_code == 303
    with httpx.Client(base_url=browsed.base) as client:
        r = client.post("/browse/login", data={"token": "adbp_not-a-token"})
        assert r.status_code == 401 and "unknown or revoked token" in r.text


def test_expired_session_is_renewed_from_the_refresh_cookie(browsed: Browsed) -> None:
    with _login(browsed, username="admin", password=PASSWORD) as client:
        client.cookies.delete("lensdb_browse", path="/browse")
        client.cookies.set("lensdb_browse", "expired-or-gone", path="/browse")
        r = client.get("/browse")
        assert r.status_code == 200
        assert "lensdb_browse=" in r.headers["set-cookie"]


def test_dev_mode_opens_without_login(browsed_dev: Browsed) -> None:
    with httpx.Client(base_url=browsed_dev.base) as client:
        r = client.get("/browse")
        assert r.status_code == 200 and shown(r.text) == browsed_dev.uids
        assert "dev (no login)" in r.text
        thumb = client.get(f"/browse/thumb/{browsed_dev.uids[0]}", params={"width": 80})
        assert thumb.status_code == 200 and thumb.headers["content-type"].startswith("image/")


def test_filters(browsed: Browsed, admin: httpx.Client) -> None:
    uids = browsed.uids
    alpha = [u for u in uids if browsed.datasets[u] == "alpha"]
    assert shown(admin.get("/browse", params={"dataset": "alpha"}).text) == alpha
    assert shown(admin.get("/browse", params={"dataset": "beta"}).text) == uids[7:]
    # Constraints typed into the page: both spellings, combined with the other filters.
    r = admin.get("/browse", params={"constraints": '{"name": ["in", ["img1", "img8"]]}'})
    assert shown(r.text) == [uids[1], uids[8]]
    r = admin.get(
        "/browse",
        params={"constraints": '["all", ["$name", "in", ["img1", "img8"]]]', "dataset": "beta"},
    )
    assert shown(r.text) == [uids[8]]
    # Constraints on the page's own keys do not collide with its filters.
    r = admin.get(
        "/browse",
        params={"constraints": f'{{"_uniqueid": [">=", "{uids[6]}"]}}', "dataset": "alpha"},
    )
    assert shown(r.text) == [uids[6]]
    assert shown(admin.get("/browse", params={"label": "cat"}).text) == uids[:2]
    assert shown(admin.get("/browse", params={"label": "nose"}).text) == uids[:1]
    assert shown(admin.get("/browse", params={"label": "tree"}).text) == uids[:1]
    assert shown(admin.get("/browse", params={"label": "zebra"}).text) == []
    assert shown(admin.get("/browse", params={"annotated": "yes"}).text) == uids[:1]
    assert shown(admin.get("/browse", params={"annotated": "no"}).text) == uids[1:]
    r = admin.get("/browse", params={"annotated": "no", "label": "cat"})
    assert shown(r.text) == uids[1:2]


def test_bad_filters_say_what_is_wrong(admin: httpx.Client) -> None:
    r = admin.get("/browse", params={"constraints": '{"width": [">=", 640'})
    assert r.status_code == 400 and "constraints are not valid JSON" in r.text
    r = admin.get("/browse", params={"constraints": '{"width": ["~", 640]}'})
    assert r.status_code == 400 and "unknown operator" in r.text
    r = admin.get("/browse", params={"limit": "0"})
    assert r.status_code == 400 and "limit must be" in r.text
    r = admin.get("/browse", params={"after": "drop table"})
    assert r.status_code == 400 and "_uniqueid like 2.0.17" in r.text
    assert admin.get("/browse/image/9.9.9").status_code == 404
    assert admin.get("/browse/image/nope").status_code == 400
    assert admin.get("/browse/thumb/2.0.1", params={"width": "huge"}).status_code == 400


@pytest.mark.parametrize("params", [{}, {"dataset": "alpha"}, {"annotated": "no"}])
def test_keyset_paging_visits_every_image_once(
    browsed: Browsed, admin: httpx.Client, params: dict
) -> None:
    expected = shown(admin.get("/browse", params=params).text)
    seen: list[str] = []
    url: str | None = "/browse?" + httpx.QueryParams({**params, "limit": "3"}).__str__()
    pages = 0
    while url:
        r = admin.get(url)
        assert r.status_code == 200
        page = shown(r.text)
        assert 0 < len(page) <= 3
        seen += page
        url = next_link(r.text)
        pages += 1
    assert seen == expected and pages == -(-len(expected) // 3)


def test_overlays_in_the_html(browsed: Browsed, admin: httpx.Client) -> None:
    html = admin.get("/browse", params={"limit": "2"}).text
    assert 'viewBox="0 0 320 240"' in html
    assert (
        'data-kind="box" data-label="cat"' in html
        and 'x="40" y="30" width="120" height="90"' in html
    )
    assert html.count('class="shape human"') == 2  # the cat box and the nose keypoint
    assert html.count('class="shape prediction"') == 3  # dog, tree, and the second image's cat


def test_image_page(browsed: Browsed, admin: httpx.Client) -> None:
    r = admin.get(f"/browse/image/{browsed.uids[0]}")
    assert r.status_code == 200
    html = r.text
    for text in ("img0", "alpha", "ann@example.com", "bob@example.com", "2026-01-03T03:04:05"):
        assert text in html
    task = f"{LS_URL}/projects/{ANNOTATION['LS_project_id']}/data?task={ANNOTATION['LS_task_id']}"
    assert f'href="{task}"' in html
    assert "human annotation" in html and "prediction" in html
    full = admin.get(f"/browse/thumb/{browsed.uids[0]}")
    assert full.status_code == 200 and full.headers["content-type"] == "image/png"
    thumb = admin.get(f"/browse/thumb/{browsed.uids[0]}", params={"width": 160})
    from io import BytesIO

    from PIL import Image

    assert Image.open(BytesIO(thumb.content)).size == (160, 120)
    again = admin.get(
        f"/browse/thumb/{browsed.uids[0]}",
        params={"width": 160},
        headers={"If-None-Match": thumb.headers["etag"]},
    )
    assert again.status_code == 304


def test_roles_are_respected(browsed: Browsed) -> None:
    db = browsed.server.connector()
    r, _ = db.query(
        [
            {
                "CreateRole": {
                    "name": "images-only",
                    "objects": {"read": False},
                    "images": {"read": True},
                }
            },
            {
                "CreateUser": {
                    "username": "ivy",
                    "password": "ivy-password-1",
                    "roles": ["images-only"],
                }
            },
            {"CreateRole": {"name": "reader", "objects": {"read": True}}},
            {
                "CreateUser": {
                    "username": "rita",
                    "password": "rita-password-1",
                    "roles": ["reader"],
                }
            },
        ]
    )
    assert all(list(item.values())[0]["status"] == 0 for item in r), r
    with _login(browsed, username="ivy", password="ivy-password-1") as ivy:
        r = ivy.get("/browse")
        assert r.status_code == 403 and "Permission denied: user &#x27;ivy&#x27;" in r.text
        assert ivy.get(f"/browse/thumb/{browsed.uids[0]}").status_code == 200
    with _login(browsed, username="rita", password="rita-password-1") as rita:
        r = rita.get("/browse")
        assert r.status_code == 200 and shown(r.text) == browsed.uids


@pytest.fixture(scope="module")
def common_label(lensdb_module_server_factory) -> Browsed:
    """30 images; more "common" boxes than the label probe takes (on every third image), so the
    page reads images and keeps those showing the label; one "rare" box, found by the engine."""
    from lensdb.gateway.browse.routes import LABEL_PROBE

    from .conftest import png

    server = lensdb_module_server_factory(name="common")
    db = server.connector()
    q: list[dict] = []
    holders = list(range(0, 30, 3))
    per_image = LABEL_PROBE // len(holders) + 1
    for i in range(30):
        q.append({"AddImage": {"_ref": i + 1, "properties": {"name": f"img{i}"}}})
        for k in range(per_image if i in holders else 0):
            box = {"x": k % 50, "y": 1, "width": 5, "height": 5}
            q.append({"AddBoundingBox": {"image_ref": i + 1, "rectangle": box, "label": "common"}})
    box = {"x": 1, "y": 1, "width": 5, "height": 5}
    q.append({"AddBoundingBox": {"image_ref": 6, "rectangle": box, "label": "rare"}})
    r, _ = db.query(q, [png(64, 48) for _ in range(30)])
    assert isinstance(r, list) and all(list(c.values())[0]["status"] == 0 for c in r)
    r, _ = db.query([{"FindImage": {"uniqueids": True, "blobs": False}}])
    uids = [e["_uniqueid"] for e in r[0]["FindImage"]["entities"]]
    return Browsed(server, uids, {})


def test_common_and_rare_labels(common_label: Browsed) -> None:
    uids = common_label.uids
    with _login(common_label, username="admin", password=PASSWORD) as client:
        r = client.get("/browse", params={"label": "common"})
        assert shown(r.text) == uids[::3]
        assert shown(client.get("/browse", params={"label": "rare"}).text) == [uids[5]]
        seen: list[str] = []
        url: str | None = "/browse?label=common&limit=3"
        while url:
            r = client.get(url)
            seen += shown(r.text)
            url = next_link(r.text)
        assert seen == uids[::3]
        r = client.get("/browse", params={"label": "common", "annotated": "no", "limit": "4"})
        assert shown(r.text) == uids[:12:3]
