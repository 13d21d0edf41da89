"""The browse page in headless Chromium: log in, filter, page, open an image; overlays checked.

Screenshots go to test-artifacts/browse/. The overlays are checked twice: the DOM geometry of each
SVG shape against the stored box scaled to the thumbnail, and the screenshot's pixels at the box
edges (the stroke colour) and inside the box (the image itself).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from .conftest import BACKGROUND, HUMAN_BOX, KEYPOINT, PRED_BOX, Browsed

CHROMIUM = os.environ.get("LENSDB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
ARTIFACTS = (
    Path(os.environ.get("LENSDB_TEST_ARTIFACTS", Path(__file__).parents[2] / "test-artifacts"))
    / "browse"
)
HUMAN_RGB = (0x00, 0xC8, 0x53)
PREDICTION_RGB = (0xFF, 0x6D, 0x00)
GEOMETRY = """sel => {
  const card = document.querySelector(sel);
  const img = card.querySelector('img');
  const r = e => { const b = e.getBoundingClientRect();
                   return {x: b.left, y: b.top, w: b.width, h: b.height}; };
  return {
    img: r(img), natural: [img.naturalWidth, img.naturalHeight], complete: img.complete,
    shapes: Array.from(card.querySelectorAll('.shape')).map(s => ({
      kind: s.dataset.kind, label: s.dataset.label, human: s.classList.contains('human'),
      visible: getComputedStyle(s).display !== 'none', ...r(s)})),
    tags: Array.from(card.querySelectorAll('.tag')).map(t => ({text: t.textContent, ...r(t)})),
  };
}"""


def _distance(a: tuple, b: tuple) -> float:
    return sum((x - y) ** 2 for x, y in zip(a[:3], b[:3], strict=True)) ** 0.5


def _nearest(shot: Image.Image, x: float, y: float, colour: tuple, reach: int = 2) -> float:
    """The smallest colour distance to `colour` among the pixels within `reach` of (x, y)."""
    best = 1e9
    for dx in range(-reach, reach + 1):
        for dy in range(-reach, reach + 1):
            best = min(best, _distance(shot.getpixel((round(x) + dx, round(y) + dy)), colour))
    return best


def _check_overlay(geo: dict, scale: float, shot: Image.Image) -> None:
    """The human box, prediction box and keypoint of the first image, in DOM and in pixels."""
    img = geo["img"]
    shapes = {(s["kind"], s["label"]): s for s in geo["shapes"]}
    assert set(shapes) == {
        ("box", "cat"),
        ("box", "dog"),
        ("polygon", "tree"),
        ("keypoint", "nose"),
    }
    for (kind, label), stored, human in (
        (("box", "cat"), HUMAN_BOX, True),
        (("box", "dog"), PRED_BOX, False),
    ):
        s = shapes[(kind, label)]
        assert s["human"] is human
        assert s["x"] - img["x"] == pytest.approx(stored["x"] * scale, abs=1)
        assert s["y"] - img["y"] == pytest.approx(stored["y"] * scale, abs=1)
        assert s["w"] == pytest.approx(stored["width"] * scale, abs=1)
        assert s["h"] == pytest.approx(stored["height"] * scale, abs=1)
    nose = shapes[("keypoint", "nose")]
    assert nose["x"] + nose["w"] / 2 - img["x"] == pytest.approx(KEYPOINT[0] * scale, abs=1)
    assert nose["y"] + nose["h"] / 2 - img["y"] == pytest.approx(KEYPOINT[1] * scale, abs=1)
    # Label names sit on the shape's top-left corner.
    cat_tag = next(t for t in geo["tags"] if t["text"] == "cat")
    assert cat_tag["x"] - img["x"] == pytest.approx(HUMAN_BOX["x"] * scale, abs=1)
    assert cat_tag["y"] + cat_tag["h"] - img["y"] == pytest.approx(HUMAN_BOX["y"] * scale, abs=1)

    # Pixels: the human box's solid stroke on each edge's middle, the image inside it.
    x0, y0 = img["x"] + HUMAN_BOX["x"] * scale, img["y"] + HUMAN_BOX["y"] * scale
    w, h = HUMAN_BOX["width"] * scale, HUMAN_BOX["height"] * scale
    for px, py in ((x0, y0 + h / 2), (x0 + w, y0 + h / 2), (x0 + w / 2, y0), (x0 + w / 2, y0 + h)):
        assert _nearest(shot, px, py, HUMAN_RGB) < 40, (
            px,
            py,
            shot.getpixel((round(px), round(py))),
        )
    assert _distance(shot.getpixel((round(x0 + w / 2), round(y0 + h / 2))), BACKGROUND) < 12
    # The prediction's dashed stroke: most points along its left edge are orange, none green.
    px0, py0 = img["x"] + PRED_BOX["x"] * scale, img["y"] + PRED_BOX["y"] * scale
    ph = PRED_BOX["height"] * scale
    samples = [_nearest(shot, px0, py0 + ph * k / 10, PREDICTION_RGB, 1) for k in range(1, 10)]
    assert sum(d < 40 for d in samples) >= 5, samples
    assert all(_nearest(shot, px0, py0 + ph * k / 10, HUMAN_RGB, 1) > 80 for k in range(1, 10))
    kx, ky = img["x"] + KEYPOINT[0] * scale, img["y"] + KEYPOINT[1] * scale
    assert _distance(shot.getpixel((round(kx), round(ky))), HUMAN_RGB) < 40


def _wait_images(page) -> None:
    page.wait_for_function(
        "Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)"
    )


def test_browse_in_chromium(browsed_embedded: Browsed) -> None:
    browsed = browsed_embedded
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs pip install playwright")
    if not shutil.which(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    uids = browsed.uids
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 1000}, device_scale_factor=1)
            page.set_default_timeout(30_000)
            # Not logged in: the page sends us to the login form.
            page.goto(f"{browsed.base}/browse?limit=4")
            assert "/browse/login" in page.url
            page.fill("input[name=username]", "admin")
            page.fill("input[name=password]", "wrong")
            page.click("button[type=submit]")
            assert "wrong username or password" in page.inner_text(".error")
            page.fill("input[name=password]", browsed.server.admin_password)
            page.screenshot(path=str(ARTIFACTS / "01-login.png"))
            page.click("button[type=submit]")
            page.wait_for_url(f"{browsed.base}/browse?limit=4")
            _wait_images(page)
            cards = page.eval_on_selector_all(".card", "cs => cs.map(c => c.dataset.uniqueid)")
            assert cards == uids[:4]

            # The first image's overlays, thumbnail 240 px wide (320 x 240 stored: scale 0.75).
            geo = page.evaluate(GEOMETRY, f'.card[data-uniqueid="{uids[0]}"]')
            assert geo["natural"] == [240, 180] and geo["img"]["w"] == 240
            shot_path = ARTIFACTS / "02-grid.png"
            page.screenshot(path=str(shot_path))
            shot = Image.open(shot_path).convert("RGB")
            _check_overlay(geo, 0.75, shot)

            # Hide predictions: only human shapes stay.
            page.uncheck("input[data-toggle=prediction]")
            geo = page.evaluate(GEOMETRY, f'.card[data-uniqueid="{uids[0]}"]')
            assert {s["label"] for s in geo["shapes"] if s["visible"]} == {"cat", "nose"}
            page.check("input[data-toggle=prediction]")

            # Filter by dataset, typed into the form; then by constraints.
            page.fill("input[name=dataset]", "beta")
            page.click("form.filters button[type=submit]")
            page.wait_for_load_state("load")
            _wait_images(page)
            cards = page.eval_on_selector_all(".card", "cs => cs.map(c => c.dataset.uniqueid)")
            assert cards == uids[7:]
            page.fill("input[name=dataset]", "")
            page.fill("textarea[name=constraints]", '{"name": ["in", ["img0", "img5", "img6"]]}')
            page.click("form.filters button[type=submit]")
            page.wait_for_load_state("load")
            cards = page.eval_on_selector_all(".card", "cs => cs.map(c => c.dataset.uniqueid)")
            assert cards == [uids[0], uids[5], uids[6]]
            page.screenshot(path=str(ARTIFACTS / "03-filtered.png"))

            # Paging: four per page, then the next pages, by the link.
            page.goto(f"{browsed.base}/browse?limit=4")
            seen = []
            for n in range(3):
                _wait_images(page)
                seen += page.eval_on_selector_all(".card", "cs => cs.map(c => c.dataset.uniqueid)")
                page.screenshot(path=str(ARTIFACTS / f"04-page-{n + 1}.png"))
                if n < 2:
                    page.click("a[rel=next]")
                    page.wait_for_load_state("load")
            assert seen == uids
            assert page.query_selector("a[rel=next]") is None

            # An image's own page: full size, same overlays at scale 1, annotations, task link.
            page.goto(f"{browsed.base}/browse?limit=4")
            page.click(f'.card[data-uniqueid="{uids[0]}"] .frame')
            page.wait_for_url(f"**/browse/image/{uids[0]}**")
            _wait_images(page)
            geo = page.evaluate(GEOMETRY, ".full")
            assert geo["natural"] == [320, 240] and geo["img"]["w"] == 320
            shot_path = ARTIFACTS / "05-image.png"
            page.screenshot(path=str(shot_path), full_page=True)
            _check_overlay(geo, 1.0, Image.open(shot_path).convert("RGB"))
            text = page.inner_text("main")
            assert "ann@example.com" in text and "Pets" in text
            link = page.get_attribute("a.ls-task", "href")
            assert link == "http://labelstudio.example:8080/projects/3/data?task=42"
            page.click("text=back to the grid")
            page.wait_for_url(f"{browsed.base}/browse?limit=4")

            # A fresh browser logs in with an API token instead of a password.
            token = browsed.server.cli("tokens", "create", "admin").stdout.strip()
            other = browser.new_page(viewport={"width": 1300, "height": 1000})
            other.goto(f"{browsed.base}/browse/image/{uids[1]}")
            assert "/browse/login" in other.url
            other.fill("input[name=token]", token)
            other.click("button[type=submit]")
            other.wait_for_url(f"**/browse/image/{uids[1]}")
            assert other.inner_text("h2") == f"Image {uids[1]}"
            other.screenshot(path=str(ARTIFACTS / "06-token-login.png"))
        finally:
            browser.close()
