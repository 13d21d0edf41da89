"""`lensdb labelstudio ...`: Label Studio with lensdb as source and target storage.

Other modules add subcommands to this group with
`from lensdb.cli.labelstudio import labelstudio` and `@labelstudio.command()`.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import click

from lensdb.cli import main, setting, settings
from lensdb.cli.common import config_error, split_hostport

FOLDER = "./lensdb-labelstudio"


def _default_data() -> str:
    """LENSDB_DATA when it names a PostgreSQL database (what `lensdb serve` would serve); a
    data folder in LENSDB_DATA is a server's database, not a Label Studio folder."""
    from lensdb.store.factory import is_postgres_url

    data = settings().data
    return data if is_postgres_url(data) else FOLDER


@main.group()
def labelstudio() -> None:
    """Label Studio with the lensdb storage plugin (needs: pip install 'lensdb[labelstudio]')."""


@labelstudio.command()
@click.option("--port", default=8080, show_default=True, type=int, help="Label Studio's HTTP port.")
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address Label Studio listens on."
)
@click.option(
    "--data",
    default=lambda: _default_data(),
    show_default=FOLDER,
    metavar="FOLDER|URL",
    help="Folder for Label Studio's data (DATA/labelstudio) and a started lensdb (DATA/lensdb); "
    "or postgresql://USER:PASSWORD@HOST/DB: the started lensdb serves that database, with "
    "--blobs, as `lensdb serve` does. Env: LENSDB_DATA (when it is a postgresql:// URL).",
)
@click.option(
    "--blobs",
    default=setting("blobs"),
    metavar="URL",
    help="With a postgresql:// --data: where blobs go, s3://BUCKET/PREFIX or "
    "file:///shared/path (as for `lensdb serve`). Env: LENSDB_BLOBS.",
)
@click.option(
    "--state",
    "state_dir",
    default=FOLDER,
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="With a postgresql:// --data: the folder for Label Studio's data and the started "
    "lensdb's log, password file and TLS certificate.",
)
@click.option(
    "--lensdb",
    "lensdb_addr",
    default=setting("server"),
    metavar="HOST:PORT",
    help="A running lensdb (or ApertureDB) server to offer in the storage form. Env: LENSDB_SERVER. "
    "Without it a lensdb server is started on 127.0.0.1:55555 (or the one there is used).",
)
@click.option(
    "--username", envvar="LABEL_STUDIO_USERNAME", help="E-mail of a Label Studio user to create."
)
@click.option("--password", envvar="LABEL_STUDIO_PASSWORD", help="Password of that user.")
@click.option(
    "--token",
    envvar="LABEL_STUDIO_USER_TOKEN",
    help="API token of that user (more than 5 characters).",
)
@click.option("--log-level", default="WARNING", show_default=True, help="Label Studio's log level.")
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="Show all of Label Studio's output here (request lines, tracebacks). Without it the "
    "terminal shows one line per problem and DATA/labelstudio/label-studio.log keeps everything.",
)
def start(
    port: int,
    host: str,
    data: str,
    blobs: str | None,
    state_dir: Path,
    lensdb_addr: str | None,
    username: str | None,
    password: str | None,
    token: str | None,
    log_level: str,
    verbose: bool,
) -> None:
    """Start stock Label Studio with the lensdb storage type, migrations applied, quiet and offline-safe.

    Manual equivalent: DJANGO_SETTINGS_MODULE=lensdb.labelstudio.plugin.settings label-studio start
    """
    import subprocess

    from lensdb.labelstudio import launcher

    try:
        import label_studio  # noqa: F401
    except ImportError:
        raise click.ClickException(
            "Label Studio is not installed: pip install -e '.[labelstudio]'"
        ) from None
    from lensdb.store.factory import check_location, is_postgres_url, redact

    database = data if is_postgres_url(data) else None
    if database is not None:
        if lensdb_addr:
            raise click.UsageError("--data postgresql://... starts a lensdb: leave out --lensdb")
        try:
            check_location(database, blobs)  # a wrong URL, bucket or credentials: one line
        except Exception as e:
            raise config_error(e) from None
        data = state_dir
    elif blobs:
        raise click.UsageError(f"--blobs {blobs} needs --data postgresql://...")
    data = Path(data).absolute()
    lensdb_proc = None
    password_file = data / "lensdb" / "admin-password"
    if lensdb_addr:
        lhost, lport = split_hostport(lensdb_addr)
        click.echo(f"lensdb: using {lhost}:{lport}")
        where = "the password of your lensdb user"
    else:
        lhost, lport = "127.0.0.1", 55555
        if launcher.port_in_use(lhost, lport) and database is not None:
            raise click.ClickException(
                f"a server already answers on {lhost}:{lport}: stop it to start lensdb on "
                f"{redact(database)}, or give that server with --lensdb instead of --data"
            )
        if launcher.port_in_use(lhost, lport):
            click.echo(f"lensdb: a server already answers on {lhost}:{lport}; using it")
            where = (
                f"in {password_file}"
                if password_file.exists()
                else "the password of your lensdb user"
            )
        else:
            given = settings().admin_password
            pw = launcher.admin_password_for(data / "lensdb", given)
            (data / "lensdb").mkdir(parents=True, exist_ok=True)
            with open(data / "lensdb" / "serve.log", "ab") as serve_log:
                try:
                    lensdb_proc = launcher.start_lensdb(
                        data / "lensdb",
                        lhost,
                        lport,
                        55556,
                        pw,
                        log_file=serve_log,
                        database=database,
                        blobs=blobs,
                    )
                except RuntimeError as exc:
                    raise click.ClickException(
                        f"{exc}; see {data / 'lensdb' / 'serve.log'}"
                    ) from None
            where = "from LENSDB_ADMIN_PASSWORD" if given else f"in {password_file}"
            where_data = redact(database) if database else data / "lensdb"
            click.echo(
                f"lensdb: started on {lhost}:{lport} (data in {where_data}"
                + (f", blobs in {blobs}" if database else "")
                + f", log in {data / 'lensdb' / 'serve.log'})"
            )
    click.echo(f"Storage form: Host {lhost}, Port {lport}, User Name admin, Password {where}")
    opts = launcher.LabelStudioOptions(
        data_dir=data / "labelstudio",
        port=port,
        host=host,
        username=username,
        password=password,
        token=token,
        lensdb_host=lhost,
        lensdb_port=lport,
        log_level=log_level,
        verbose=verbose,
    )
    ls_log = data / "labelstudio" / "label-studio.log"
    try:
        ls_proc = launcher.start_label_studio(opts, log_file=None if verbose else subprocess.PIPE)
    except RuntimeError as exc:
        launcher.stop(lensdb_proc)
        raise click.ClickException(str(exc)) from None
    if not verbose:
        launcher.relay_output(ls_proc, ls_log, verbose=False)

    def _terminate(signum, frame):  # noqa: ARG001
        # Unwind to the `finally` below; waiting on children inside a signal handler can deadlock.
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    try:
        launcher.wait_http(f"http://{host}:{port}/health", ls_proc)
        click.echo(
            f"Label Studio: http://{host}:{port}  (Settings > Cloud Storage > Add Source Storage > lensdb)"
        )
        if not verbose:
            click.echo(f"Label Studio's full log: {ls_log} (-v shows it here)")
        code = ls_proc.wait()
    except KeyboardInterrupt:
        code = 0
    except RuntimeError as exc:
        launcher.stop(ls_proc)
        launcher.stop(lensdb_proc)
        raise click.ClickException(str(exc)) from None
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # already stopping
        launcher.stop(ls_proc)
        launcher.stop(lensdb_proc)
    sys.exit(code)
