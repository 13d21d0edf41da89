"""Fixtures: a real `lensdb serve` and a real Label Studio (with the plugin) per test session.

Label Studio is started through `lensdb labelstudio start` in a temp data folder on a free port; the
first start applies migrations (~30 s), later tests reuse the process.
"""

from __future__ import annotations

import importlib.util
import io
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

try:
    import label_studio  # noqa: F401
    import requests
except ImportError:  # pure tests (mapping, queries) still run without Label Studio
    collect_ignore_glob = ["test_ls_*.py"]
    requests = None

_root = importlib.util.spec_from_file_location(
    "lensdb_tests_root_conftest", Path(__file__).parents[1] / "conftest.py"
)
_root_conftest = importlib.util.module_from_spec(_root)
_root.loader.exec_module(_root_conftest)
LensdbServer = _root_conftest.LensdbServer
free_port = _root_conftest.free_port

USER, PASSWORD, TOKEN = "tester@example.com", "tester-password-1", "lensdb-test-token"
ARTIFACTS = (
    Path(os.environ.get("LENSDB_TEST_ARTIFACTS", Path(__file__).parents[2] / "test-artifacts"))
    / "labelstudio"
)


class LabelStudio:
    """A Label Studio process with the lensdb plugin, and helpers for its REST API."""

    def __init__(
        self, data_dir: Path, lensdb: LensdbServer, env: dict[str, str] | None = None
    ) -> None:
        self.data_dir = Path(data_dir)
        self.lensdb = lensdb
        self.env = dict(env or {})
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.data_dir.parent / "labelstudio.log"
        self.proc: subprocess.Popen | None = None
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Token {TOKEN}"

    def start(self, timeout: float = 240.0) -> LabelStudio:
        env = {**os.environ, "LENSDB_OUTBOX_RETRY_SECONDS": "1", **self.env}
        cmd = [
            sys.executable,
            "-c",
            "from lensdb.cli import main; main()",
            "labelstudio",
            "start",
            "--port",
            str(self.port),
            "--data",
            str(self.data_dir),
            "--lensdb",
            f"{self.lensdb.host}:{self.lensdb.port}",
            "--username",
            USER,
            "--password",
            PASSWORD,
            "--token",
            TOKEN,
            "--log-level",
            "INFO",
        ]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"Label Studio exited ({self.proc.returncode}):\n{self.log()[-4000:]}"
                )
            try:
                if requests.get(self.url + "/health", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"Label Studio did not start in {timeout}s:\n{self.log()[-4000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # -- REST helpers -------------------------------------------------------------------
    def api(self, method: str, path: str, expect: int | tuple[int, ...] | None = None, **kw):
        r = self.session.request(method, self.url + path, timeout=120, **kw)
        if expect is not None:
            codes = expect if isinstance(expect, tuple) else (expect,)
            assert r.status_code in codes, f"{method} {path} -> {r.status_code}: {r.text[:2000]}"
        return r

    def create_project(self, title: str, label_config: str) -> int:
        return self.api(
            "POST", "/api/projects/", 201, json={"title": title, "label_config": label_config}
        ).json()["id"]

    def storage_body(self, project: int, **fields) -> dict:
        return {
            "project": project,
            "title": "lensdb",
            "hostname": self.lensdb.host,
            "port": self.lensdb.port,
            "username": "admin",
            "password": self.lensdb.admin_password,
            **fields,
        }

    def add_source(self, project: int, **fields) -> dict:
        return self.api(
            "POST", "/api/storages/lensdb/", 201, json=self.storage_body(project, **fields)
        ).json()

    def add_target(self, project: int, **fields) -> dict:
        return self.api(
            "POST", "/api/storages/export/lensdb", 201, json=self.storage_body(project, **fields)
        ).json()

    def sync_source(self, storage_id: int) -> dict:
        return self.api("POST", f"/api/storages/lensdb/{storage_id}/sync", 200).json()

    def tasks(self, project: int) -> list[dict]:
        out, page = [], 1
        while True:
            r = self.api(
                "GET", f"/api/tasks/?project={project}&fields=all&page={page}&page_size=100"
            )
            if r.status_code == 404:
                return out
            body = r.json()
            out += body["tasks"]
            if len(out) >= body.get("total", 0) or not body["tasks"]:
                return out
            page += 1


def wait_until(check: Callable[[], object], timeout: float = 30.0, every: float = 0.25):
    """Poll `check` until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(every)


def jpeg_bytes(width: int, height: int, seed: int) -> bytes:
    from PIL import Image

    rnd = random.Random(seed)
    img = Image.new(
        "RGB", (width, height), (rnd.randrange(256), rnd.randrange(256), rnd.randrange(256))
    )
    for _ in range(20):  # some structure so every file differs
        x, y = rnd.randrange(width), rnd.randrange(height)
        img.putpixel((x, y), (rnd.randrange(256), rnd.randrange(256), rnd.randrange(256)))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


@pytest.fixture(scope="session")
def ls_lensdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LensdbServer]:
    """A lensdb server of its own: the outbox test stops and restarts it."""
    server = LensdbServer(tmp_path_factory.mktemp("ls-lensdb") / "data").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def label_studio(
    ls_lensdb: LensdbServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LabelStudio]:
    ls = LabelStudio(tmp_path_factory.mktemp("labelstudio") / "data", ls_lensdb).start()
    yield ls
    ls.stop()


@pytest.fixture
def db(ls_lensdb: LensdbServer):
    """An aperturedb SDK Connector to the test lensdb (plain TCP, like the plugin by default)."""
    return ls_lensdb.connector(use_ssl=False)


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


def logged_in_page(tmp_path_factory: pytest.TempPathFactory, label_studio: LabelStudio):
    """A context manager: Debian's Chromium (headless, new profile) logged in to Label Studio as USER."""
    import contextlib
    import shutil

    sync_api = pytest.importorskip("playwright.sync_api", reason="needs pip install playwright")
    if not shutil.which(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")

    @contextlib.contextmanager
    def session():
        with sync_api.sync_playwright() as p:
            context = p.chromium.launch_persistent_context(
                str(tmp_path_factory.mktemp("chromium-profile")),
                executable_path=CHROMIUM,
                headless=True,
                args=CHROMIUM_ARGS,
                viewport={"width": 1400, "height": 1000},
            )
            pg = context.new_page()
            pg.set_default_timeout(30_000)
            pg.goto(label_studio.url + "/user/login/")
            pg.fill("input[name=email]", USER)
            pg.fill("input[name=password]", PASSWORD)
            pg.click("button[type=submit]")
            pg.wait_for_url(lambda url: "/user/login" not in url)
            try:
                yield pg
            finally:
                context.close()

    return session()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
