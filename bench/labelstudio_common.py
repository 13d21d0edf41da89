"""Shared setup for the Label Studio benchmarks: a lensdb server and Label Studio with the plugin, in a temp dir.

Not a benchmark itself. Needs: pip install -e '.[dev,labelstudio]'.
"""

from __future__ import annotations

import io
import random
import socket
import statistics
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import requests
from PIL import Image

from lensdb.labelstudio import launcher

ADMIN_PASSWORD = "bench-admin-password"
USER, PASSWORD, TOKEN = "bench@example.com", "bench-password-1", "lensdb-bench-token"
LABEL_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="box" toName="image"><Label value="Cat"/><Label value="Dog"/></RectangleLabels>
  <PolygonLabels name="poly" toName="image"><Label value="Road"/></PolygonLabels>
</View>"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def small_jpeg(seed: int, size: tuple[int, int] = (64, 48)) -> bytes:
    rnd = random.Random(seed)
    img = Image.new("RGB", size, (rnd.randrange(256), rnd.randrange(256), rnd.randrange(256)))
    for _ in range(8):
        img.putpixel((rnd.randrange(size[0]), rnd.randrange(size[1])), (255, 255, 255))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85)
    return buf.getvalue()


def percentiles(values: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(values, n=100, method="inclusive")
    return q[49], q[94]


class Stack:
    """lensdb serve + Label Studio (dev server) with the plugin; REST helpers with a token."""

    def __init__(self, root: Path, ls_env: dict[str, str] | None = None) -> None:
        self.root = root
        self.db_port, self.ls_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.ls_port}"
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Token {TOKEN}"
        self.ls_env = dict(ls_env or {})
        self.procs: list[subprocess.Popen] = []

    def start(self) -> Stack:
        log = open(self.root / "servers.log", "ab")  # noqa: SIM115 - handed to the children
        self.procs.append(
            launcher.start_lensdb(
                self.root / "lensdb",
                "127.0.0.1",
                self.db_port,
                free_port(),
                ADMIN_PASSWORD,
                log_file=log,
            )
        )
        opts = launcher.LabelStudioOptions(
            data_dir=self.root / "labelstudio",
            port=self.ls_port,
            username=USER,
            password=PASSWORD,
            token=TOKEN,
            lensdb_host="127.0.0.1",
            lensdb_port=self.db_port,
            extra_env={"LENSDB_OUTBOX_RETRY_SECONDS": "2", **self.ls_env},
        )
        ls = launcher.start_label_studio(opts, log_file=log)
        self.procs.append(ls)
        launcher.wait_http(self.url + "/health", ls, timeout=300)
        return self

    def stop(self) -> None:
        for p in reversed(self.procs):
            launcher.stop(p)

    def connector(self):
        from aperturedb.Connector import Connector

        return Connector(
            host="127.0.0.1",
            port=self.db_port,
            user="admin",
            password=ADMIN_PASSWORD,
            use_ssl=False,
            retry_interval_seconds=0,
        )

    def api(self, method: str, path: str, **kw):
        r = self.http.request(method, self.url + path, timeout=3600, **kw)
        if r.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {r.status_code} {r.text[:1000]}")
        return r

    def project(self, title: str, config: str = LABEL_CONFIG) -> int:
        return self.api(
            "POST", "/api/projects/", json={"title": title, "label_config": config}
        ).json()["id"]

    def lensdb_storage(self, project: int, target: bool = False, **fields) -> int:
        body = {
            "project": project,
            "title": "lensdb",
            "hostname": "127.0.0.1",
            "port": self.db_port,
            "username": "admin",
            "password": ADMIN_PASSWORD,
            **fields,
        }
        path = "/api/storages/export/lensdb" if target else "/api/storages/lensdb/"
        return self.api("POST", path, json=body).json()["id"]


@contextmanager
def stack(ls_env: dict[str, str] | None = None, keep: bool = False):
    root = Path(tempfile.mkdtemp(prefix="lensdb-ls-bench-"))
    s = Stack(root, ls_env)
    try:
        print(
            f"starting lensdb + Label Studio in {root} (first start runs migrations, ~30 s)",
            flush=True,
        )
        t = time.perf_counter()
        s.start()
        print(f"  ready in {time.perf_counter() - t:.1f} s", flush=True)
        yield s
    finally:
        s.stop()
        if not keep:
            subprocess.run(["rm", "-rf", str(root)], check=False)


def load_images(
    connector,
    n: int,
    boxes: int = 2,
    batch: int = 500,
    tag: str = "bench",
    folder: Path | None = None,
) -> list[bytes]:
    """Add n small JPEGs (with `boxes` boxes each) through the SDK; also write them to `folder` if given."""
    out = []
    for start in range(0, n, batch):
        query, blobs = [], []
        for i in range(start, min(n, start + batch)):
            data = small_jpeg(i)
            out.append(data)
            if folder is not None:
                (folder / f"img{i:06d}.jpg").write_bytes(data)
            ref = len(query) + 1
            query.append(
                {
                    "AddImage": {
                        "_ref": ref,
                        "properties": {
                            "name": f"img{i:06d}",
                            "tag": tag,
                            "width": 64,
                            "height": 48,
                        },
                    }
                }
            )
            blobs.append(data)
            for b in range(boxes):
                query.append(
                    {
                        "AddBoundingBox": {
                            "image_ref": ref,
                            "label": "Cat" if b % 2 == 0 else "Dog",
                            "rectangle": {"x": 2 + 3 * b, "y": 4, "width": 20, "height": 15},
                        }
                    }
                )
        response, _ = connector.query(query, blobs)
        if not isinstance(response, list):
            raise RuntimeError(f"load failed: {response}")
    return out
