"""A real headless Chromium: log in, find the lensdb storage type, label a task whose image comes from lensdb.

Needs Debian's `chromium` (/usr/bin/chromium) and playwright from PyPI; no browser is downloaded.
Screenshots are kept under test-artifacts/labelstudio/.
"""

from __future__ import annotations

import json

import pytest

from .conftest import LabelStudio, logged_in_page
from .datasets import LABEL_CONFIG, load_images


@pytest.fixture(scope="module")
def page(tmp_path_factory, label_studio: LabelStudio):
    with logged_in_page(tmp_path_factory, label_studio) as pg:
        yield pg


@pytest.fixture(scope="module")
def browser_project(label_studio: LabelStudio, ls_lensdb):
    tag, images = load_images(ls_lensdb.connector(use_ssl=False), 3, 3, seed=41)
    pid = label_studio.create_project("browser", LABEL_CONFIG)
    storage = label_studio.add_source(
        pid, constraints=json.dumps({"dataset": ["==", tag]}), task_data_properties="name, caption"
    )
    label_studio.sync_source(storage["id"])
    return pid, label_studio.tasks(pid)


def test_cloud_storage_dialog_offers_lensdb(
    page, label_studio: LabelStudio, browser_project, artifacts
):
    pid, _ = browser_project
    page.goto(f"{label_studio.url}/projects/{pid}/settings/storage")
    page.locator("text=Add Source Storage >> visible=true").first.click()
    page.get_by_text("Storage Type").wait_for()
    page.screenshot(path=str(artifacts / "01-add-source-storage.png"))
    page.get_by_text("AWS S3").last.click()  # open the type list
    page.get_by_text("lensdb (ApertureDB-compatible)").last.click()
    host = page.locator("input[name=hostname]")
    host.wait_for()
    # The server the launcher was given is the placeholder (a value would pin the field: issue 14).
    assert (
        host.get_attribute("placeholder") == label_studio.lensdb.host and host.input_value() == ""
    )
    assert page.locator("input[name=port]").get_attribute("placeholder") == str(
        label_studio.lensdb.port
    )
    page.fill("input[name=title]", "images in lensdb")
    page.fill("input[name=password]", label_studio.lensdb.admin_password)
    page.screenshot(path=str(artifacts / "02-lensdb-storage-form.png"), full_page=True)
    page.get_by_text("Check Connection").click()
    page.get_by_text("Successfully connected!").wait_for()
    page.screenshot(path=str(artifacts / "03-check-connection.png"))


def test_task_image_renders_with_predictions(
    page, label_studio: LabelStudio, browser_project, artifacts
):
    pid, tasks = browser_project
    task = tasks[0]
    page.goto(f"{label_studio.url}/projects/{pid}/data?task={task['id']}")
    page.wait_for_function(
        """(taskId) => [...document.querySelectorAll('img')].some(
               i => i.src.includes(`/tasks/${taskId}/resolve/`) && i.complete && i.naturalWidth > 0)""",
        arg=task["id"],
    )
    width = page.evaluate(
        """(taskId) => [...document.querySelectorAll('img')]
        .filter(i => i.src.includes(`/tasks/${taskId}/resolve/`)).map(i => i.naturalWidth)[0]""",
        task["id"],
    )
    assert width == task["meta"]["lensdb"]["width"]
    # The prediction (model version "lensdb") is shown with its regions: two boxes and one polygon.
    page.get_by_text("Road").last.wait_for()
    regions = page.evaluate("""() => {
        const store = window.Htx && window.Htx.annotationStore;
        const sel = store && store.selected;
        return sel ? sel.regionStore.regions.map(r => r.type) : null; }""")
    page.screenshot(path=str(artifacts / "04-task-with-predictions.png"))
    assert regions is not None and sorted(regions) == [
        "polygonregion",
        "rectangleregion",
        "rectangleregion",
    ]
