"""Headless Chromium opens a Label Studio task whose image the gateway serves from another origin."""

from __future__ import annotations

import time

import pytest

from .conftest import BOX_CONFIG, LS_USER, chromium_path
from .helpers import add_images
from .test_push_pull import run

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def test_labeling_ui_renders_gateway_image(lensdb_for_ls, label_studio, ls_api, artifacts) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    browser_path = chromium_path()
    if browser_path is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    add_images(lensdb_for_ls.connector(), 2, "browser", polygons=True, width=320, height=240)
    pid = ls_api.create_project("browser", BOX_CONFIG)["id"]
    run(
        lensdb_for_ls,
        label_studio,
        "labelstudio",
        "push",
        "--project",
        str(pid),
        "--constraints",
        '{"dataset": ["==", "browser"]}',
        "--predictions",
    )
    task = ls_api.changed_tasks(pid, None, 1)[0]
    gateway_origin = f"http://127.0.0.1:{lensdb_for_ls.http_port}"
    assert task["data"]["image"].startswith(gateway_origin) and gateway_origin != label_studio.url

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=browser_path, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(f"{label_studio.url}/user/login")
            page.fill("input[name=email]", LS_USER)
            page.fill("input[name=password]", "connector-pass-1")
            page.click("button[type=submit]")
            page.wait_for_load_state("networkidle")
            page.goto(f"{label_studio.url}/projects/{pid}/data?task={task['id']}")
            images: list = []
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                images = page.evaluate("""() => Array.from(document.images)
                    .filter(i => i.src.includes('/media/images/'))
                    .map(i => ({src: i.src, w: i.naturalWidth, h: i.naturalHeight, co: i.crossOrigin}))""")
                if any(i["w"] == 320 for i in images):
                    break
                time.sleep(0.25)
            page.wait_for_timeout(500)
            page.screenshot(path=str(artifacts / "connector-labeling-ui.png"))
        finally:
            browser.close()
    shown = [i for i in images if i["src"] == task["data"]["image"]]
    assert shown, images
    assert all(i["w"] == 320 and i["h"] == 240 for i in shown)
    assert any(i["co"] == "anonymous" for i in shown)  # loaded as a CORS request, and allowed
