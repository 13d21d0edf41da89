"""Start stock Label Studio with the lensdb plugin (and a lensdb server when none is configured).

Used by `lensdb labelstudio start` and by the test fixtures.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

SETTINGS_MODULE = "lensdb.labelstudio.plugin.settings"

# Quiet and offline-safe: no version check against PyPI, no Sentry, no usage analytics.
QUIET_ENV = {
    "LABEL_STUDIO_LATEST_VERSION_CHECK": "false",
    "LABEL_STUDIO_SENTRY_DSN": "",
    "LABEL_STUDIO_FRONTEND_SENTRY_DSN": "",
    "LABEL_STUDIO_COLLECT_ANALYTICS": "false",
}


def port_in_use(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class LabelStudioOptions:
    data_dir: Path
    port: int = 8080
    host: str = "127.0.0.1"
    username: str | None = None  # e-mail of a user to create at start
    password: str | None = None
    token: str | None = None  # API token for that user (legacy `Authorization: Token` is enabled)
    lensdb_host: str = "127.0.0.1"
    lensdb_port: int = 55555
    log_level: str = "WARNING"
    verbose: bool = False  # Label Studio's tracebacks and request lines too (plugin/logs.py)
    extra_env: dict[str, str] = field(default_factory=dict)


def label_studio_env(opts: LabelStudioOptions) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_SETTINGS")}
    for k, v in QUIET_ENV.items():
        env.setdefault(k, v)
    env.update(
        DJANGO_SETTINGS_MODULE=SETTINGS_MODULE,
        LABEL_STUDIO_BASE_DATA_DIR=str(Path(opts.data_dir).absolute()),
        LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN="true",
        LENSDB_DEFAULT_HOST=opts.lensdb_host,
        LENSDB_DEFAULT_PORT=str(opts.lensdb_port),
        LOG_LEVEL=opts.log_level,
        PYTHONUNBUFFERED="1",
    )
    # The aperturedb SDK otherwise writes error.<time>.log files into the current directory.
    env.setdefault("ADB_LOG_FILE", str(Path(opts.data_dir).absolute() / "aperturedb-errors.log"))
    if opts.username and opts.password:
        # A user is made at start, so nobody else may sign up without an invitation link.
        env.update(
            LABEL_STUDIO_USERNAME=opts.username,
            LABEL_STUDIO_PASSWORD=opts.password,
            LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK="true",
        )
    if opts.token:
        env["LABEL_STUDIO_USER_TOKEN"] = opts.token
    if opts.verbose:
        env["LENSDB_LS_VERBOSE"] = "1"
    env.update(opts.extra_env)
    return env


def label_studio_command(opts: LabelStudioOptions) -> list[str]:
    return [
        sys.executable,
        "-c",
        "from label_studio.server import main; main()",
        "start",
        "--no-browser",
        "--internal-host",
        opts.host,
        "--port",
        str(opts.port),
    ]


def start_label_studio(opts: LabelStudioOptions, log_file=None) -> subprocess.Popen:
    """Start Label Studio; its output goes to `log_file`, or (None) to this process's output."""
    if port_in_use(opts.host, opts.port):
        # Label Studio would silently move to the next port; say so instead.
        raise RuntimeError(
            f"port {opts.port} on {opts.host} is already in use; pick another with --port"
        )
    Path(opts.data_dir).mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        label_studio_command(opts),
        env=label_studio_env(opts),
        stdout=log_file,
        stderr=subprocess.STDOUT if log_file else None,
    )


# A console line worth showing: Label Studio's log format with a level of WARNING or worse.
_PROBLEM = re.compile(rb"\] \[(WARNING|ERROR|CRITICAL)\] ")


def relay_output(
    proc: subprocess.Popen, log_path: Path, verbose: bool, out=None
) -> threading.Thread:
    """Copy a child's output into `log_path`; show problems (everything when verbose) on `out`.

    Label Studio prints its start-up chatter, Python warnings and each logged problem's traceback;
    the terminal gets one line per problem, the file keeps it all.
    """
    out = out if out is not None else sys.stderr.buffer

    def pump() -> None:
        with open(log_path, "ab") as log:
            for line in iter(proc.stdout.readline, b""):
                log.write(line)
                log.flush()
                if verbose or _PROBLEM.search(line):
                    out.write(line)
                    out.flush()

    thread = threading.Thread(target=pump, name="label-studio-output", daemon=True)
    thread.start()
    return thread


def wait_http(url: str, proc: subprocess.Popen | None = None, timeout: float = 180.0) -> None:
    """Wait until `url` answers 200 (first start runs Label Studio's migrations: ~30 s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with code {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:  # noqa: S310 - local health check
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {timeout:g} s")


def admin_password_for(data_dir: Path, given: str | None = None) -> str:
    """The password given (Settings.admin_password), or one generated once and kept (0600) beside the database."""
    if given:
        return given
    path = Path(data_dir) / "admin-password"
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    pw = secrets.token_urlsafe(18)
    path.write_text(pw + "\n")
    path.chmod(0o600)
    return pw


def start_lensdb(
    data_dir: Path,
    host: str,
    port: int,
    http_port: int,
    password: str,
    log_file=None,
    *,
    database: str | None = None,
    blobs: str | None = None,
) -> subprocess.Popen:
    """`lensdb serve` on DATA_DIR/db, or on `database` (a postgresql:// URL) with `blobs`, its
    local files (TLS certificate) then in DATA_DIR/state."""
    env = {**os.environ, "LENSDB_ADMIN_PASSWORD": password}
    where = (
        ["--data", database, "--blobs", blobs or "", "--state", str(data_dir / "state")]
        if database
        else ["--data", str(data_dir / "db")]
    )
    cmd = [
        sys.executable,
        "-c",
        "from lensdb.cli import main; main()",
        "serve",
        *where,
        "--host",
        host,
        "--port",
        str(port),
        "--http-port",
        str(http_port),
    ]
    proc = subprocess.Popen(
        cmd, env=env, stdout=log_file, stderr=subprocess.STDOUT if log_file else None
    )
    deadline = time.monotonic() + 60
    while not port_in_use(host, port):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"lensdb serve did not start on {host}:{port}")
        time.sleep(0.1)
    return proc


def stop(proc: subprocess.Popen | None, timeout: float = 20.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
