"""The connector checks lensdb's TLS certificate by default; a CA file or an explicit flag changes that.

Against a real `lensdb serve` with its generated (self-signed CA) certificate, on TCP (pull) and
HTTPS (tasks).
"""

from __future__ import annotations

import json
import ssl

import httpx
import pytest
from click.testing import CliRunner

from lensdb.cli import main
from lensdb.connector.transport import quick_ack_transport
from lensdb.server import tls

from .conftest import BOX_CONFIG, LS_TOKEN
from .helpers import add_images


def _cli(server, *args: str) -> tuple[int, str]:
    env = {"LENSDB_PASSWORD": server.admin_password, "LABEL_STUDIO_API_KEY": LS_TOKEN}
    result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.output


def test_tls_is_verified_unless_told_otherwise(
    lensdb_server_factory, label_studio, ls_api, tmp_path
) -> None:
    server = lensdb_server_factory("--http-tls", name="tls")
    add_images(server.connector(), 2, "tls", boxes=False)
    https = ["--lensdb-http", f"https://localhost:{server.http_port}"]
    tasks = ["labelstudio", "tasks", "--constraints", '{"dataset": ["==", "tls"]}', *https]

    code, out = _cli(server, *tasks)
    assert code == 1 and "certificate is not trusted" in out and "DATA/tls/ca.crt" in out
    code, out = _cli(
        server, *tasks, "--lensdb-ca-cert", server.ca_cert, "-o", str(tmp_path / "t.json")
    )
    assert code == 0, out
    assert len(json.loads((tmp_path / "t.json").read_text())) == 2
    code, out = _cli(server, *tasks, "--lensdb-insecure")
    assert code == 0 and "2 task(s)" in out

    pid = ls_api.create_project("tls", BOX_CONFIG)["id"]
    pull = [
        "labelstudio",
        "pull",
        "--ls-url",
        label_studio.url,
        "--project",
        str(pid),
        "--lensdb",
        f"localhost:{server.port}",
        "--lensdb-tls",
    ]
    code, out = _cli(server, *pull)
    assert code == 1 and "TLS problem" in out and "Certificate verification failed" in out
    code, out = _cli(server, *pull, "--lensdb-ca-cert", server.ca_cert)
    assert code == 0 and "project" in out, out
    code, out = _cli(server, *pull, "--lensdb-insecure")
    assert code == 0, out
    # Another CA (another lensdb's) is refused as well.
    tls.ensure_certificate(tmp_path / "other")
    code, out = _cli(server, *pull, "--lensdb-ca-cert", str(tmp_path / "other" / "tls" / "ca.crt"))
    assert code == 1 and "TLS problem" in out


def test_the_label_studio_transport_speaks_tls_and_checks_certificates(
    lensdb_server_factory,
) -> None:
    """The connector's Label Studio client acknowledges answers at once (`connector.transport`):
    over HTTPS its streams go through `start_tls`, and the certificate is still checked."""
    server = lensdb_server_factory("--http-tls", name="tls-transport")
    url = f"https://localhost:{server.http_port}/openapi.json"
    trusted = ssl.create_default_context(cafile=server.ca_cert)
    with httpx.Client(transport=quick_ack_transport(url, trusted)) as client:
        for _ in range(3):  # one kept-alive connection, read again and again
            r = client.get(url)
            assert r.status_code == 200 and "paths" in r.json()
    with (
        httpx.Client(transport=quick_ack_transport(url)) as client,
        pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"),
    ):
        client.get(url)
