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
from lensdb.cli.common import split_hostport


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
    default="./lensdb-labelstudio",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for Label Studio's data (DATA/labelstudio) and a started lensdb (DATA/lensdb).",
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
    data: Path,
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
    data = data.absolute()
    lensdb_proc = None
    password_file = data / "lensdb" / "admin-password"
    if lensdb_addr:
        lhost, lport = split_hostport(lensdb_addr)
        click.echo(f"lensdb: using {lhost}:{lport}")
        where = "the password of your lensdb user"
    else:
        lhost, lport = "127.0.0.1", 55555
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
                lensdb_proc = launcher.start_lensdb(
                    data / "lensdb", lhost, lport, 55556, pw, log_file=serve_log
                )
            where = "from LENSDB_ADMIN_PASSWORD" if given else f"in {password_file}"
            click.echo(
                f"lensdb: started on {lhost}:{lport} (data in {data / 'lensdb'}, "
                f"log in {data / 'lensdb' / 'serve.log'})"
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
