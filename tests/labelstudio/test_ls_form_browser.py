"""The storage forms as a new user meets them (issue 14), in Debian's Chromium driven by Playwright.

Against `lensdb labelstudio start` (the fixture starts it as documented), a user types into every field
of the source and target forms to point them at a *second* lensdb server, on another port and with
another user; a wrong port fails; the saved storages are read back through the API; a sync brings that
server's images; an annotator moves one model box and deletes another, and the change reaches lensdb.
Screenshots of each step are kept under test-artifacts/labelstudio/form-*.png.
"""

from __future__ import annotations

import json
import time

import pytest
from playwright.sync_api import expect

from .conftest import LabelStudio, LensdbServer, free_port, logged_in_page, wait_until
from .datasets import LABEL_CONFIG, load_images

USER, USER_PASSWORD = "labeler", "labeler-password-1"
TYPE_TITLE = "lensdb (ApertureDB-compatible)"


@pytest.fixture(scope="module")
def other(tmp_path_factory) -> LensdbServer:
    """A second lensdb server with its own user, images and model boxes (all labelled Cat)."""
    server = LensdbServer(tmp_path_factory.mktemp("other-lensdb") / "data").start()
    admin = server.connector(use_ssl=False)
    r, _ = admin.query(
        [
            {
                "CreateUser": {
                    "username": USER,
                    "password": USER_PASSWORD,
                    "roles": ["admin"],
                    "email": "labeler@example.com",
                }
            }
        ]
    )
    assert r[0]["CreateUser"]["status"] == 0, r
    server.tag, server.images = load_images(admin, 6, 6, seed=14, labels=["Cat"])
    server.token = server.cli("tokens", "create", USER).stdout.strip()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def page(tmp_path_factory, label_studio: LabelStudio):
    with logged_in_page(tmp_path_factory, label_studio) as pg:
        yield pg


@pytest.fixture(scope="module")
def project(label_studio: LabelStudio) -> int:
    return label_studio.create_project("forms as a user fills them", LABEL_CONFIG)


def _sync_button(page, label_studio: LabelStudio, project: int, which: str):
    """The Sync Storage button of the source or the target card, once both lists have rendered.

    The page loads its source and target lists with two requests; `.last` taken before the target
    list arrived clicked the source card's button (one CI run: the target never synced)."""
    sources = len(label_studio.api("GET", f"/api/storages?project={project}", 200).json())
    targets = len(label_studio.api("GET", f"/api/storages/export?project={project}", 200).json())
    buttons = page.get_by_role("button", name="Sync Storage")
    expect(buttons).to_have_count(sources + targets, timeout=30_000)
    return buttons.nth(0 if which == "source" else sources + targets - 1)


def _open_dialog(page, label_studio: LabelStudio, project: int, which: str) -> None:
    page.goto(f"{label_studio.url}/projects/{project}/settings/storage")
    page.wait_for_load_state("networkidle")
    # Before the first storage the page shows its own "Add your first cloud storage" buttons and keeps
    # the usual ones hidden and disabled: click the one a user sees.
    page.locator("button:visible:not([disabled])", has_text=f"Add {which} Storage").first.click()
    page.get_by_text("Storage Type").wait_for()
    page.get_by_text("AWS S3").last.click()  # open the type list
    page.get_by_text(TYPE_TITLE).last.click()
    page.locator("input[name=hostname]").wait_for()


def _toggles(page) -> dict[str, bool]:
    return dict(
        page.locator("input[type=checkbox]").evaluate_all(
            "els => els.map(e => [e.name, e.checked])"
        )
    )


def _toggle(page, name: str) -> None:
    """Click a toggle the way a user does: on its label."""
    before = _toggles(page)[name]
    page.locator(f"label:has(input[name={name}])").first.click()
    assert _toggles(page)[name] is (not before)


def test_source_form_takes_what_the_user_types(
    page, label_studio: LabelStudio, other, project, artifacts
):
    _open_dialog(page, label_studio, project, "Source")
    host, port = page.locator("input[name=hostname]"), page.locator("input[name=port]")
    # The launcher's server is offered as placeholders, so the fields stay free to type in.
    assert (
        host.get_attribute("placeholder") == label_studio.lensdb.host and host.input_value() == ""
    )
    assert port.get_attribute("placeholder") == str(label_studio.lensdb.port)
    assert page.locator("input[name=username]").get_attribute("placeholder") == "admin"
    page.screenshot(path=str(artifacts / "form-01-source-empty.png"), full_page=True)

    wrong_port = free_port()
    page.fill("input[name=title]", "images of the other server")
    page.fill("input[name=hostname]", "localhost")
    page.fill("input[name=port]", str(wrong_port))
    page.fill("input[name=username]", USER)
    page.fill("input[name=password]", USER_PASSWORD)
    page.fill("[name=constraints]", json.dumps({"dataset": ["==", other.tag]}))
    page.fill("input[name=limit]", "4")
    page.fill("input[name=task_data_properties]", "name, caption")
    page.fill("input[name=guid_property]", "name")
    page.fill("[name=pred_constraints]", json.dumps({"_label": ["==", "Cat"]}))
    for name in (
        "use_ssl",
        "verify_certificate",
        "as_format_jpg",
    ):  # TLS on, its self-signed cert accepted
        _toggle(page, name)
    _toggle(page, "predictions_readonly")  # on and off again: editable predictions are the default
    _toggle(page, "predictions_readonly")
    typed = {"hostname": "localhost", "port": str(wrong_port), "username": USER}
    for name, value in typed.items():
        assert page.locator(f"input[name={name}]").input_value() == value, name
    assert _toggles(page) == {
        "use_ssl": True,
        "verify_certificate": False,
        "as_format_jpg": True,
        "predictions": True,
        "predictions_readonly": False,
    }

    # A wrong port fails, and the notice names the field.
    page.get_by_role("button", name="Test storage connection").click()
    page.get_by_text("Connection failed").wait_for()
    page.get_by_text(f"Port: Nothing is listening at localhost:{wrong_port}").first.wait_for()
    page.screenshot(path=str(artifacts / "form-02-wrong-port.png"))

    page.fill("input[name=port]", str(other.port))
    page.get_by_role("button", name="Test storage connection").click()
    page.get_by_text("Successfully connected!").wait_for()
    page.screenshot(path=str(artifacts / "form-03-connected.png"), full_page=True)
    page.get_by_role("button", name="Add storage").click()
    page.get_by_text("images of the other server").wait_for()

    saved = label_studio.api("GET", f"/api/storages/lensdb?project={project}", 200).json()
    assert len(saved) == 1
    s = saved[0]
    assert (s["hostname"], s["port"], s["username"]) == ("localhost", other.port, USER)
    assert json.loads(s["constraints"]) == {"dataset": ["==", other.tag]}
    assert json.loads(s["pred_constraints"]) == {"_label": ["==", "Cat"]}
    assert (s["limit"], s["task_data_properties"], s["guid_property"]) == (
        4,
        "name, caption",
        "name",
    )
    assert (
        s["use_ssl"],
        s["verify_certificate"],
        s["as_format_jpg"],
        s["predictions"],
        s["predictions_readonly"],
    ) == (True, False, True, True, False)
    assert "password" not in s and "token" not in s


def test_edit_dialog_changes_fields(page, label_studio: LabelStudio, other, project, artifacts):
    page.goto(f"{label_studio.url}/projects/{project}/settings/storage")
    page.wait_for_load_state("networkidle")
    page.get_by_role("button", name="Storage options").first.click()
    page.get_by_text("Edit", exact=True).click()
    page.locator("input[name=hostname]").wait_for()
    assert page.locator("input[name=hostname]").input_value() == "localhost"
    assert page.locator("input[name=port]").input_value() == str(other.port)
    page.fill("input[name=hostname]", "127.0.0.1")
    page.fill("input[name=limit]", "5")
    page.fill("input[name=title]", "other server, edited")
    page.screenshot(path=str(artifacts / "form-04-edit.png"), full_page=True)
    page.get_by_role(
        "button", name="Save storage settings"
    ).click()  # the password is kept when left empty
    page.get_by_text("other server, edited").wait_for()
    s = label_studio.api("GET", f"/api/storages/lensdb?project={project}", 200).json()[0]
    assert (s["hostname"], s["port"], s["username"], s["limit"]) == (
        "127.0.0.1",
        other.port,
        USER,
        5,
    )


def test_sync_brings_the_other_servers_images(
    page, label_studio: LabelStudio, other, project, artifacts
):
    page.goto(f"{label_studio.url}/projects/{project}/settings/storage")
    _sync_button(page, label_studio, project, "source").click()
    tasks = wait_until(
        lambda: len(label_studio.tasks(project)) == 5 and label_studio.tasks(project), 60
    )
    assert tasks, "the sync did not create 5 tasks"
    page.reload()
    page.get_by_text("Completed").first.wait_for()
    page.screenshot(path=str(artifacts / "form-05-synced.png"))
    names = sorted(t["storage_filename"] for t in tasks)
    assert names == sorted(img.name for img in other.images)[:5]  # keyed by the typed guid property
    by_name = {img.name: img for img in other.images}
    for t in tasks:
        assert t["data"]["caption"] == f"caption of {t['data']['name']}"
        result = t["predictions"][0]["result"]
        assert len(result) == len(by_name[t["data"]["name"]].boxes) == 2  # the polygon is not a Cat
        assert all(r["type"] == "rectanglelabels" and r["readonly"] is False for r in result)
        image = label_studio.api("GET", t["data"]["image"], 200)
        assert image.headers["Content-Type"] == "image/jpeg"


def test_target_form_with_a_token(page, label_studio: LabelStudio, other, project, artifacts):
    _open_dialog(page, label_studio, project, "Target")
    page.fill("input[name=title]", "labels to the other server")
    page.fill("input[name=hostname]", "localhost")
    page.fill("input[name=port]", str(other.port))
    page.fill("input[name=username]", USER)
    page.fill("input[name=token]", other.token)
    page.get_by_role("button", name="Test storage connection").click()
    page.get_by_text("Successfully connected!").wait_for()
    page.screenshot(path=str(artifacts / "form-06-target.png"), full_page=True)
    page.get_by_role("button", name="Add storage").click()
    page.get_by_text("labels to the other server").wait_for()
    s = label_studio.api("GET", f"/api/storages/export/lensdb?project={project}", 200).json()[0]
    assert (s["hostname"], s["port"], s["username"], s["use_ssl"]) == (
        "localhost",
        other.port,
        USER,
        False,
    )


def _regions(page) -> list[dict]:
    return page.evaluate("""() => window.Htx.annotationStore.selected.regionStore.regions.map(
        r => ({type: r.type, id: r.cleanId || r.id, x: r.x, y: r.y, w: r.width, h: r.height}))""")


def test_annotator_moves_and_deletes_model_boxes(
    page, label_studio: LabelStudio, other, project, artifacts
):
    task = sorted(label_studio.tasks(project), key=lambda t: t["id"])[0]
    page.goto(f"{label_studio.url}/projects/{project}/data?task={task['id']}")
    page.locator(".konvajs-content").first.wait_for()
    boxes = wait_until(lambda: [r for r in _regions(page) if r["type"] == "rectangleregion"], 30)
    assert len(boxes) == 2, boxes
    stage = page.locator(".konvajs-content").first.bounding_box()
    time.sleep(0.5)  # the image settles its size once loaded
    stage = page.locator(".konvajs-content").first.bounding_box()
    moved, deleted = boxes
    cx = stage["x"] + (moved["x"] + moved["w"] / 2) / 100 * stage["width"]
    cy = stage["y"] + (moved["y"] + moved["h"] / 2) / 100 * stage["height"]
    page.mouse.move(cx, cy)
    page.mouse.down()
    page.mouse.move(cx + 20, cy + 15, steps=5)
    page.mouse.move(cx + 40, cy + 30, steps=5)
    page.mouse.up()
    after = {r["id"]: r for r in _regions(page)}
    assert after[moved["id"]]["x"] > moved["x"] + 1 and after[moved["id"]]["y"] > moved["y"] + 1, (
        after
    )
    # Select the other box in the region list and press Delete, as an annotator does.
    page.locator(".lsf-outliner-item").nth(1).click()
    page.keyboard.press("Backspace")
    left = _regions(page)
    assert [r["id"] for r in left] == [moved["id"]], left
    page.screenshot(path=str(artifacts / "form-07-corrected.png"))
    page.get_by_role("button", name="Submit").click()

    db = other.connector(use_ssl=False)

    def stored():
        r, _ = db.query(
            [
                {
                    "FindBoundingBox": {
                        "blobs": False,
                        "constraints": {"LS_annotation": ["!=", None]},
                        "results": {"list": ["LS_id", "LS_x", "LS_y", "LS_annotation"]},
                    }
                }
            ]
        )
        return r[0]["FindBoundingBox"].get("entities")

    regions = wait_until(stored, 30)
    assert regions and len(regions) == 1, regions
    assert abs(regions[0]["LS_x"] - after[moved["id"]]["x"]) < 0.01
    assert abs(regions[0]["LS_y"] - after[moved["id"]]["y"]) < 0.01
    # The model boxes themselves stay as they were (predictions are never touched).
    r, _ = db.query(
        [
            {
                "FindBoundingBox": {
                    "blobs": False,
                    "constraints": {"LS_annotation": ["==", None]},
                    "results": {"count": True},
                }
            }
        ]
    )
    assert r[0]["FindBoundingBox"]["count"] == 2 * len(other.images)

    # The target card shows what lensdb holds after a sync, not only what the sync sent.
    def target_storage() -> dict:
        return label_studio.api(
            "GET", f"/api/storages/export/lensdb?project={project}", 200
        ).json()[0]

    before = target_storage()["last_sync"]
    page.goto(f"{label_studio.url}/projects/{project}/settings/storage")
    _sync_button(page, label_studio, project, "target").click()
    seen: list[dict] = []

    def synced() -> dict | None:
        seen.append(target_storage())
        return (
            seen[-1]
            if seen[-1]["status"] == "completed" and seen[-1]["last_sync"] != before
            else None
        )

    target = wait_until(synced, 30)
    assert target, seen[-1]
    assert target["last_sync_count"] == 1 and target["meta"]["total_annotations"] == 1, target
    page.reload()
    page.get_by_text("(1 total)").wait_for()
    page.screenshot(path=str(artifacts / "form-08-target-synced.png"))
