"""Stock Label Studio (no lensdb plugin) and a lensdb server whose gateway allows Label Studio's origin.

One Label Studio process per test session (~30 s first start). Label Studio must be importable by the
test interpreter (pip install 'lensdb[labelstudio]'), or LENSDB_TEST_LS_PYTHON names a Python that has it.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from lensdb.connector.lsclient import LabelStudio
from lensdb.labelstudio.launcher import QUIET_ENV, stop, wait_http

# The root conftest, loaded by path: `tests` is no package, so it cannot be imported by name.
_spec = importlib.util.spec_from_file_location(
    "lensdb_connector_root_conftest", Path(__file__).parents[1] / "conftest.py"
)
_root = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_root)
LensdbServer = _root.LensdbServer
free_port = _root.free_port

LS_TOKEN = "connector-test-token-1234"
LS_USER = "annotator@example.com"
WEBHOOK_SECRET = "webhook-secret-for-tests"
BOX_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image"><Label value="Cat"/><Label value="Dog"/></RectangleLabels>
  <PolygonLabels name="polygon" toName="image"><Label value="Cat"/><Label value="Dog"/></PolygonLabels>
  <KeyPointLabels name="kp" toName="image"><Label value="Eye"/></KeyPointLabels>
  <Choices name="quality" toName="image"><Choice value="good"/><Choice value="bad"/></Choices>
</View>"""


def _ls_python() -> str | None:
    explicit = os.environ.get("LENSDB_TEST_LS_PYTHON")
    if explicit:
        return explicit
    try:
        import label_studio  # noqa: F401
    except ImportError:
        return None
    return sys.executable


class LabelStudioProcess:
    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir = data_dir
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None
        self.log_path = data_dir.parent / "label-studio.log"

    def start(self, python: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
        env.update(QUIET_ENV)
        env.update(
            LABEL_STUDIO_BASE_DATA_DIR=str(self.data_dir),
            LABEL_STUDIO_USERNAME=LS_USER,
            LABEL_STUDIO_PASSWORD="connector-pass-1",
            LABEL_STUDIO_USER_TOKEN=LS_TOKEN,
            LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN="true",
            LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK="true",
            # The webhook receiver is on 127.0.0.1: allow it past the SSRF protection.
            LABEL_STUDIO_USE_DEFAULT_BANNED_SUBNETS="false",
            LOG_LEVEL="WARNING",
            PYTHONUNBUFFERED="1",
        )
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            [
                python,
                "-c",
                "from label_studio.server import main; main()",
                "start",
                "--no-browser",
                "--internal-host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        wait_http(f"{self.url}/health", self.proc, timeout=240)
        # Label Studio moves to another port silently when its port is busy: make sure it is ours.
        assert httpx.get(f"{self.url}/api/version").status_code == 200

    def stop(self) -> None:
        stop(self.proc)


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabelStudioProcess]:
    python = _ls_python()
    if python is None:
        pytest.skip("Label Studio is not installed (pip install 'lensdb[labelstudio]')")
    root = tmp_path_factory.mktemp("ls")
    ls = LabelStudioProcess(root / "data", free_port())
    ls.start(python)
    yield ls
    ls.stop()


@pytest.fixture(scope="session")
def ls_api(label_studio: LabelStudioProcess) -> Iterator[LabelStudio]:
    api = LabelStudio(label_studio.url, LS_TOKEN)
    yield api
    api.close()


@pytest.fixture(scope="session")
def lensdb_for_ls(tmp_path_factory: pytest.TempPathFactory, label_studio: LabelStudioProcess):
    server = LensdbServer(
        tmp_path_factory.mktemp("lensdb-ls") / "data",
        env={"LENSDB_CORS_ORIGINS": label_studio.url, "LENSDB_WEBHOOK_SECRET": WEBHOOK_SECRET},
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    path = Path(__file__).resolve().parents[2] / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")
