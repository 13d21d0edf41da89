"""One Settings object: read from the environment once, options laid over it, bad values named."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lensdb.settings import ENV, Settings


def test_from_env_reads_every_variable_and_parses_it() -> None:
    env = {
        "LENSDB_DATA": "/srv/db",
        "LENSDB_BLOBS": "s3://bucket/prefix",
        "LENSDB_PORT": "6000",
        "LENSDB_CORS_ORIGINS": "http://a.example/, http://b.example",
        "LENSDB_DEV": "yes",
        "LABEL_STUDIO_TOKEN": "t1",
        "LENSDB_OUTBOX_RETRY_SECONDS": "0.5",
        "XDG_STATE_HOME": "/st",
    }
    s = Settings.from_env(env)
    assert s.data == "/srv/db" and s.blobs == "s3://bucket/prefix" and s.port == 6000
    assert s.cors_origins == ("http://a.example", "http://b.example") and s.dev is True
    assert s.ls_token == "t1" and s.outbox_retry_seconds == 0.5
    assert s.connector_state == Path("/st/lensdb")
    assert Settings.from_env({"LENSDB_CONNECTOR_STATE": "/x"}).connector_state == Path("/x")
    # Unset and empty: the defaults.
    d = Settings.from_env({"LENSDB_BLOBS": "", "LENSDB_PORT": ""})
    assert d.blobs is None and d.port == 55555 and d.data == "data"
    assert all(v[0][0].startswith(("LENSDB_", "LABEL_STUDIO_")) for v in ENV.values())


def test_options_win_and_none_means_not_given() -> None:
    s = Settings.from_env({"LENSDB_HOST": "0.0.0.0", "LENSDB_DATA": "/env"})
    o = s.with_options(host="10.0.0.1", data=None, dev=None)
    assert (o.host, o.data, o.dev) == ("10.0.0.1", "/env", False)
    with pytest.raises(TypeError, match="unknown settings: nope"):
        s.with_options(nope=1)
    with pytest.raises(Exception):  # frozen  # noqa: B017
        s.host = "x"  # type: ignore[misc]


def test_a_malformed_value_names_its_variable() -> None:
    with pytest.raises(ValueError, match="LENSDB_PORT='abc': not an integer"):
        Settings.from_env({"LENSDB_PORT": "abc"})
    with pytest.raises(ValueError, match="LENSDB_DEV='maybe'"):
        Settings.from_env({"LENSDB_DEV": "maybe"})


def test_the_cli_reports_a_bad_variable_as_a_usage_error(tmp_path: Path) -> None:
    import os

    env = {**os.environ, "LENSDB_HTTP_PORT": "eighty"}
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            "from lensdb.cli import main; main()",
            "serve",
            "--data",
            str(tmp_path),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert "LENSDB_HTTP_PORT='eighty': not an integer" in r.stderr
