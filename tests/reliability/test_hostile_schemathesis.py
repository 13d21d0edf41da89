"""Schemathesis against the whole OpenAPI surface of a real `lensdb serve` (GET /openapi.json).

Every documented route is driven with generated requests, logged in and with the webhook's secret,
through schemathesis's examples, coverage and fuzzing phases. Checks: every check schemathesis has
(no server error, documented status codes, content types, headers and response schemas, routes
refusing unauthenticated requests, ...), except two that judge how precise the schema is, not how
the server behaves: `positive_data_acceptance` and `negative_data_rejection`. A query is one JSON
string whose commands the engine validates (bad ones are answered HTTP 200 with status -1, as the
SDK expects), and task-list parameters are checked for meaning (a constraint's shape), which no
JSON schema of the request can express.

LENSDB_SCHEMATHESIS_EXAMPLES sets the examples per operation (25 here; bench/fuzz_server.py runs
more).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from server.rawclient import RawClient

EXAMPLES = int(os.environ.get("LENSDB_SCHEMATHESIS_EXAMPLES", "25"))
WEBHOOK_SECRET = "schemathesis-webhook-secret"


def _st() -> str | None:
    here = Path(sys.executable).parent / "st"
    return str(here) if here.exists() else shutil.which("st")


@pytest.mark.skipif(_st() is None, reason="schemathesis is missing: pip install 'lensdb[dev]'")
def test_schemathesis_whole_openapi_surface(lensdb_server_factory, tmp_path) -> None:
    server = lensdb_server_factory(
        "--frame-timeout", "5", env={"LENSDB_WEBHOOK_SECRET": WEBHOOK_SECRET}
    )
    with RawClient(server.port) as c:
        token = c.authenticate("admin", server.admin_password)["session_token"]
    rss_before = psutil.Process(server.proc.pid).memory_info().rss
    done = subprocess.run(
        [
            _st(),
            "run",
            f"http://127.0.0.1:{server.http_port}/openapi.json",
            "-H",
            f"Authorization: Bearer {token}",
            "-H",
            f"X-Lensdb-Webhook-Secret: {WEBHOOK_SECRET}",
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance,negative_data_rejection",
            "--max-examples",
            str(EXAMPLES),
            "--seed",
            "12",
            "--request-timeout",
            "20",
            "--workers",
            "1",  # schemathesis 4.3's coverage phase is not thread-safe (SystemError in compile)
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
    )
    out = done.stdout + done.stderr
    generated = re.search(r"(\d+) generated", out)
    rss_after = psutil.Process(server.proc.pid).memory_info().rss
    print(
        f"\nschemathesis: {generated[1] if generated else '?'} cases over the OpenAPI surface; "
        f"server RSS {rss_before / 2**20:.0f} -> {rss_after / 2**20:.0f} MB"
    )
    assert done.returncode == 0, out[-6000:]
    assert generated and int(generated[1]) > 0
    assert server.running()
    log = server.log()
    assert "Traceback" not in log and "unexpected error" not in log, log[-4000:]
    assert rss_after - rss_before < 300 * 2**20
