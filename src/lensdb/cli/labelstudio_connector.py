"""`lensdb labelstudio tasks|push|pull|webhook`: the standalone connector (no plugin in Label Studio needed).

Label Studio is reached only through its REST API; lensdb through its TCP port (queries) and its HTTP
port (signed task lists, webhook receiver).
"""

from __future__ import annotations

import functools
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from lensdb.cli import setting, settings
from lensdb.cli.common import split_hostport
from lensdb.cli.labelstudio import labelstudio

# One line per HTTP request is noise on a progress bar; failures are reported by the commands.
logging.getLogger("httpx").setLevel(logging.WARNING)

DEFAULT_SERVER = "127.0.0.1:55555"


def _json_object(ctx: click.Context, param: click.Parameter, value: str | None) -> dict | None:
    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        raise click.BadParameter(f"not valid JSON ({exc})") from None
    if not isinstance(parsed, dict):
        raise click.BadParameter('use a JSON object, e.g. \'{"dataset": ["==", "train"]}\'')
    return parsed


def _choice(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    """--select: checked here, so a mistake is named before anything is sent."""
    if value is None:
        return None
    from lensdb.index.choose import Choice

    try:
        Choice.parse(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    return json.loads(value)


def lensdb_options(fn: Callable) -> Callable:
    """Where lensdb is and who to be there."""
    opts = [
        click.option(
            "--lensdb",
            "lensdb_addr",
            default=lambda: settings().server or DEFAULT_SERVER,
            show_default=DEFAULT_SERVER,
            metavar="HOST:PORT",
            help="lensdb's TCP port. Env: LENSDB_SERVER.",
        ),
        click.option(
            "--lensdb-http",
            default=setting("http_url"),
            show_default="http://127.0.0.1:55556",
            metavar="URL",
            help="lensdb's HTTP port (task lists, webhook). Env: LENSDB_HTTP.",
        ),
        click.option(
            "--lensdb-user",
            default=setting("user"),
            show_default="admin",
            help="lensdb user. Env: LENSDB_USER.",
        ),
        click.option(
            "--lensdb-password",
            default=setting("password"),
            help="Password of that user. Env: LENSDB_PASSWORD.",
        ),
        click.option(
            "--lensdb-token",
            default=setting("token"),
            help="API token instead of a password. Env: LENSDB_TOKEN.",
        ),
        click.option(
            "--lensdb-tls/--no-lensdb-tls",
            default=False,
            show_default=True,
            help="Talk TLS to lensdb's TCP port (for HTTP, use an https:// --lensdb-http).",
        ),
        click.option(
            "--lensdb-ca-cert",
            default=setting("ca_cert"),
            metavar="PEM",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="Check lensdb's certificate against this CA; for lensdb's own self-signed one: "
            "DATA/tls/ca.crt. Default: the system's CAs. Env: LENSDB_CA_CERT.",
        ),
        click.option(
            "--lensdb-insecure",
            is_flag=True,
            help="Do not check lensdb's TLS certificate at all (anyone on the path can read "
            "and change the traffic; prefer --lensdb-ca-cert).",
        ),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def selection_options(fn: Callable) -> Callable:
    """Which images become tasks, with what: shared by `tasks` and `push`."""
    opts = [
        click.option(
            "--constraints",
            callback=_json_object,
            help='FindImage constraints (JSON) selecting the images, e.g. \'{"dataset": ["==", "val"]}\'.',
        ),
        click.option(
            "--predictions/--no-predictions",
            default=False,
            show_default=True,
            help="Include the images' boxes and polygons as predictions.",
        ),
        click.option(
            "--pred-constraints",
            callback=_json_object,
            help="Constraints on the regions used as predictions (JSON).",
        ),
        click.option(
            "--properties",
            default="",
            help="Image properties copied into task data, comma-separated.",
        ),
        click.option(
            "--select",
            "select",
            callback=_choice,
            metavar="JSON",
            help="Images chosen by their embeddings (among those --constraints selects), e.g. "
            '\'{"set": "ViT-B/16", "mode": "diverse", "n": 200}\' (modes: diverse, dedup '
            'with "threshold", similar with "like": [uniqueids], disagree; see lensdb select).',
        ),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def ls_options(fn: Callable) -> Callable:
    opts = [
        click.option(
            "--ls-url",
            default=setting("ls_url"),
            required=True,
            metavar="URL",
            help="Label Studio's address, e.g. http://localhost:8080. Env: LABEL_STUDIO_URL.",
        ),
        click.option(
            "--ls-token",
            default=setting("ls_token"),
            required=True,
            help="Label Studio API token: a Personal Access Token or a legacy token. "
            "Env: LABEL_STUDIO_API_KEY.",
        ),
        click.option(
            "--project",
            "project_id",
            required=True,
            type=int,
            help="Label Studio project id (the number in the project's URL).",
        ),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def _db(kw: dict[str, Any]):  # noqa: ANN202 - lensdb.client.TcpClient, imported late
    from lensdb.client import ConnectionSettings, TcpClient

    host, port = split_hostport(kw["lensdb_addr"])
    if not kw["lensdb_password"] and not kw["lensdb_token"]:
        raise click.UsageError("give --lensdb-password (or LENSDB_PASSWORD) or --lensdb-token")
    return TcpClient(
        ConnectionSettings(
            host=host,
            port=port,
            username=kw["lensdb_user"],
            password=kw["lensdb_password"],
            token=kw["lensdb_token"],
            use_ssl=kw["lensdb_tls"],
            verify_certificate=not kw["lensdb_insecure"],
            ca_cert=str(kw["lensdb_ca_cert"] or ""),
        ),
        timeout=10,
    )


def _http(kw: dict[str, Any]):  # noqa: ANN202 - lensdb.client.HttpClient, imported late
    from lensdb.client import HttpClient

    verify: bool | str = False if kw["lensdb_insecure"] else str(kw["lensdb_ca_cert"] or "") or True
    return HttpClient(
        kw["lensdb_http"],
        kw["lensdb_user"],
        kw["lensdb_password"],
        kw["lensdb_token"],
        verify=verify,
    )


def _friendly(fn: Callable) -> Callable:
    """Turn the connector's own errors into one clear line and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kw: Any) -> Any:
        from lensdb.client import DatabaseError
        from lensdb.connector.lsclient import LabelStudioError
        from lensdb.connector.pull import PullError
        from lensdb.connector.push import PushError

        try:
            return fn(*args, **kw)
        except (LabelStudioError, PushError, PullError) as exc:
            raise click.ClickException(str(exc)) from None
        except DatabaseError as exc:
            raise click.ClickException(f"lensdb: {exc}") from None

    return wrapper


@labelstudio.command("tasks")
@lensdb_options
@selection_options
@click.option(
    "--label-config",
    type=click.File("r"),
    help="The project's labeling config (XML file), so control "
    "names and labels match. Default: $image, boxes on 'label', polygons on 'polygon'.",
)
@click.option(
    "--format", "fmt", type=click.Choice(["json", "csv"]), default="json", show_default=True
)
@click.option(
    "--ttl",
    default=7 * 86400,
    show_default=True,
    type=click.IntRange(min=1),
    help="Seconds the signed image links stay valid.",
)
@click.option("--limit", type=click.IntRange(min=0), help="At most this many tasks.")
@click.option(
    "--public-url", help="Address browsers reach lensdb's HTTP port at (default: --lensdb-http)."
)
@click.option(
    "-o",
    "--output",
    type=click.File("w"),
    default="-",
    help="Write here instead of standard output.",
)
@_friendly
def tasks_cmd(
    constraints: dict | None,
    predictions: bool,
    pred_constraints: dict | None,
    properties: str,
    label_config: Any,
    fmt: str,
    ttl: int,
    limit: int | None,
    public_url: str | None,
    output: Any,
    select: dict | None = None,
    **kw: Any,
) -> None:
    """Write a task file Label Studio imports as is (Import > Upload Files), with signed image links.

    Example: lensdb labelstudio tasks --constraints '{"dataset": ["==", "val"]}' --predictions > tasks.json
    """
    http = _http(kw)
    params: dict[str, Any] = {
        "predictions": predictions,
        "format": fmt,
        "ttl": ttl,
        "properties": [p.strip() for p in properties.split(",") if p.strip()],
    }
    for key, value in (
        ("constraints", constraints),
        ("pred_constraints", pred_constraints),
        ("limit", limit),
        ("base_url", public_url),
        ("select", select),
        ("label_config", label_config.read() if label_config else None),
    ):
        if value is not None:
            params[key] = value
    r = http.request("POST", "/labelstudio/tasks", json=params)
    if r.status_code != 200:
        raise click.ClickException(f"lensdb could not build the task list: {r.json().get('info')}")
    output.write(r.text)
    if fmt == "json":
        output.write("\n")
    if r.headers.get("x-lensdb-warnings"):
        click.echo(f"warning: {r.headers['x-lensdb-warnings']}", err=True)
    n = len(r.json()) if fmt == "json" else max(0, r.text.count("\n") - 1)
    click.echo(f"{n} task(s); image links valid for {ttl} s", err=True)


@labelstudio.command("push")
@ls_options
@lensdb_options
@selection_options
@click.option("--limit", type=click.IntRange(min=0), help="Send at most this many new images.")
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(min=1, max=10000))
@click.option(
    "--ttl",
    default=30 * 86400,
    show_default=True,
    type=click.IntRange(min=1),
    help="Seconds the signed image links in the tasks stay valid.",
)
@click.option(
    "--public-url",
    help="Address annotators' browsers reach lensdb's HTTP port at "
    "(default: --lensdb-http, or the server's LENSDB_PUBLIC_URL).",
)
@click.option(
    "--progress/--no-progress", default=True, show_default=True, help="Show a progress bar."
)
@_friendly
def push_cmd(
    ls_url: str,
    ls_token: str,
    project_id: int,
    constraints: dict | None,
    predictions: bool,
    pred_constraints: dict | None,
    properties: str,
    limit: int | None,
    batch_size: int,
    ttl: int,
    public_url: str | None,
    progress: bool,
    select: dict | None = None,
    **kw: Any,
) -> None:
    """Create Label Studio tasks for images selected in lensdb; images already sent to the project are skipped.

    lensdb records which image became which task (entity LS_push), so pushing again sends only new images.
    Add lensdb's address as a CORS origin for Label Studio: lensdb serve --cors-origin http://LS-HOST:PORT
    """
    from tqdm import tqdm

    from lensdb.connector.lsclient import LabelStudio
    from lensdb.connector.push import PushOptions, push
    from lensdb.index.choose import Choice

    opts = PushOptions(
        project_id=project_id,
        constraints=constraints,
        predictions=predictions,
        select=Choice.parse(select) if select is not None else None,
        pred_constraints=pred_constraints,
        limit=limit,
        batch_size=batch_size,
        ttl=ttl,
        properties=[p.strip() for p in properties.split(",") if p.strip()],
        public_url=public_url or (kw["lensdb_http"] if kw["lensdb_http"] else None),
        state_dir=settings().connector_state,
    )
    bars: list[tqdm] = []

    def set_total(n: int) -> None:
        bars.append(tqdm(total=n, unit="task", disable=not progress, file=sys.stderr))

    ls = LabelStudio(ls_url, ls_token)
    try:
        report = push(
            ls, _db(kw), _http(kw), opts, progress=lambda n: bars[0].update(n), total=set_total
        )
    finally:
        for bar in bars:
            bar.close()
        ls.close()
    click.echo(report.summary(project_id))


@labelstudio.command("pull")
@ls_options
@lensdb_options
@click.option(
    "--full",
    is_flag=True,
    help="Read every task, not only those changed since the last pull; "
    "also removes annotations of tasks deleted in Label Studio.",
)
@click.option(
    "--watch",
    type=click.FloatRange(min=1),
    metavar="SECONDS",
    help="Pull again every SECONDS until interrupted (Ctrl-C).",
)
@click.option(
    "--page-size",
    default=500,
    show_default=True,
    type=click.IntRange(min=1, max=1000),
    help="Tasks read per request and written per transaction (Label Studio answers larger pages "
    "faster per task).",
)
@_friendly
def pull_cmd(
    ls_url: str,
    ls_token: str,
    project_id: int,
    full: bool,
    watch: float | None,
    page_size: int,
    **kw: Any,
) -> None:
    """Write Label Studio's annotations into lensdb, as the storage plugin does.

    Creates and updates annotations (regions updated in place by their Label Studio id), deletes
    removed regions and deleted annotations. By default only tasks changed since the last
    successful pull are read (the cursor is kept in lensdb, entity LS_sync).
    """
    from lensdb.connector.lsclient import LabelStudio
    from lensdb.connector.pull import pull

    ls = LabelStudio(ls_url, ls_token)
    db = _db(kw)
    try:
        while True:
            report = pull(ls, db, project_id, full=full, page_size=page_size)
            click.echo(report.summary(project_id))
            if watch is None:
                return
            full = False
            time.sleep(watch)
    except KeyboardInterrupt:
        click.echo("stopped")
    finally:
        ls.close()


@labelstudio.group("webhook")
def webhook() -> None:
    """Label Studio webhooks that write annotations into lensdb the moment they are saved
    (and remove them when an annotation or its task is deleted)."""


@webhook.command("register")
@ls_options
@click.option(
    "--receiver",
    required=True,
    metavar="URL",
    help="Where Label Studio reaches lensdb's HTTP port, e.g. http://lensdb-host:55556 "
    "(/labelstudio/webhook is appended).",
)
@click.option(
    "--secret",
    default=setting("webhook_secret"),
    required=True,
    help="The shared secret lensdb checks (its LENSDB_WEBHOOK_SECRET, or the content of "
    "DATA/labelstudio-webhook.secret). Env: LENSDB_WEBHOOK_SECRET.",
)
@_friendly
def webhook_register(
    ls_url: str, ls_token: str, project_id: int, receiver: str, secret: str
) -> None:
    """Register (or update) the lensdb webhook of a Label Studio project.

    Label Studio refuses localhost and private addresses unless started with
    LABEL_STUDIO_USE_DEFAULT_BANNED_SUBNETS=false. A missed event is caught up by the next pull
    (a missed task deletion by `pull --full`). Registering again updates an older webhook to
    the events it needs now.
    """
    from lensdb.connector.lsclient import LabelStudio
    from lensdb.connector.webhooks import register

    ls = LabelStudio(ls_url, ls_token)
    try:
        hook, created = register(ls, project_id, receiver, secret)
    finally:
        ls.close()
    click.echo(
        f"{'registered' if created else 'updated'} webhook {hook.get('id')} for project {project_id}: "
        f"{hook.get('url')}"
    )
