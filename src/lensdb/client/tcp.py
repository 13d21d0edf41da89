"""lensdb over its TCP port: a thread-safe pool of the aperturedb SDK's `Connector`, errors a user can act on.

The SDK is imported on first connection, so importing this module stays cheap (the Label
Studio plugin imports it in every Django process). It works against any ApertureDB-compatible
server.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from lensdb.client.base import DatabaseUnavailable, refusal
from lensdb.errors import SUCCESS

logger = logging.getLogger(__name__)


def split_hostport(value: str) -> tuple[str, int]:
    """'HOST:PORT' (or 'tcp://HOST:PORT') as (host, port); ValueError saying the form otherwise."""
    host, _, port = value.removeprefix("tcp://").rpartition(":")
    if not host or not port.isdigit():
        raise ValueError("use HOST:PORT, e.g. 127.0.0.1:55555")
    return host.strip("[]"), int(port)


@dataclass(frozen=True)
class ConnectionSettings:
    host: str
    port: int = 55555
    username: str = "admin"
    password: str = ""
    token: str = ""
    use_ssl: bool = False
    verify_certificate: bool = True
    ca_cert: str = ""

    def describe(self) -> str:
        return f"{self.host}:{self.port}"


def _reachability_problem(
    settings: ConnectionSettings, timeout: float
) -> DatabaseUnavailable | None:
    """Say in words why nothing answers at host:port (and which setting to change), or None."""
    where = settings.describe()
    try:
        with socket.create_connection((settings.host, int(settings.port)), timeout=timeout):
            return None
    except socket.gaierror:
        return DatabaseUnavailable(
            f"The host name '{settings.host}' could not be resolved. Check the host field.",
            field="hostname",
        )
    except ConnectionRefusedError:
        return DatabaseUnavailable(
            f"Nothing is listening at {where}: connection refused. "
            "Is the lensdb server running, and is the port right?",
            field="port",
        )
    except TimeoutError:
        return DatabaseUnavailable(
            f"No answer from {where} within {timeout:g} s (firewall or wrong address?).",
            field="hostname",
        )
    except OSError as exc:
        return DatabaseUnavailable(
            f"Cannot reach {where}: {exc.strerror or exc}.", field="hostname"
        )


class TcpClient:
    """Queries one server through a small pool of connections (a Connector is not thread-safe).

    Pooling rather than one connection per thread matters under Django's development server,
    which runs every request in a new thread. Sessions are shared by all pooled connections.
    """

    def __init__(
        self, settings: ConnectionSettings, timeout: float = 5.0, pool_size: int = 8
    ) -> None:
        self.settings = settings
        self.timeout = timeout
        self._idle: queue.LifoQueue = queue.LifoQueue(maxsize=pool_size)
        self._shared = SimpleNamespace(session=None, lock=threading.Lock())

    def _new_connector(self) -> Any:
        from aperturedb.Connector import Connector

        s = self.settings
        if not s.password and not s.token:
            raise DatabaseUnavailable(
                "Give a password or a token for the lensdb user.", field="password"
            )
        problem = _reachability_problem(s, self.timeout)
        if problem:
            raise problem
        return Connector(
            host=s.host,
            port=int(s.port),
            user=s.username or "",
            password=s.password or "",
            token=s.token or "",
            use_ssl=s.use_ssl,
            verify_hostname=s.verify_certificate,
            ca_cert=s.ca_cert or None,
            shared_data=self._shared,
            retry_interval_seconds=0,
            retry_max_attempts=2,
        )

    def _take(self) -> Any:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            return self._new_connector()

    def _give_back(self, conn: Any) -> None:
        try:
            self._idle.put_nowait(conn)
        except queue.Full:
            _close(conn)

    def query(
        self,
        commands: list[dict],
        blobs: list[bytes] | None = None,
        ok: frozenset[int] | tuple[int, ...] = SUCCESS,
    ) -> tuple[list[dict], list[bytes]]:
        """Run one transaction; raise DatabaseUnavailable (retry later) or DatabaseError (rejected)."""
        conn = self._take()
        try:
            response, out = conn.query(commands, blobs or [])
        except Exception as exc:  # noqa: BLE001 - the SDK raises bare Exceptions and asserts
            _close(conn)
            raise self._explain(exc) from exc
        error = refusal(response, ok)
        if isinstance(error, DatabaseUnavailable):
            _close(conn)  # its session is no good; the next connection logs in again
        else:
            self._give_back(conn)
        if error is not None:
            raise error
        return response, list(out or [])

    def _explain(self, exc: BaseException) -> DatabaseUnavailable:
        problem = _reachability_problem(self.settings, self.timeout)
        if problem:
            return problem
        where = self.settings.describe()
        text = str(exc).strip()
        first = text.splitlines()[0] if text else repr(exc)
        low = first.lower()
        if low.startswith("could not query"):
            return DatabaseUnavailable(
                f"Lost the connection to {where} while querying (server restarting?)."
            )
        if "certificate" in low or "ssl" in low or "tls" in low:
            return DatabaseUnavailable(
                f"TLS problem talking to {where}: {first}. Give the server's CA certificate (lensdb's "
                "DATA/tls/ca.crt for its self-signed one), or turn certificate checks off, or TLS off for a "
                "plain server.",
                field="use_ssl",
            )
        if "protocol" in low:
            return DatabaseUnavailable(
                f"{where} did not accept the connection protocol (TLS on for a server "
                "without TLS, or the other way round?)",
                field="use_ssl",
            )
        if any(w in low for w in ("password", "authenticat", "token", "user", "credential")):
            return DatabaseUnavailable(
                f"The server at {where} refused the login: {first}", field="password"
            )
        return DatabaseUnavailable(f"Query to {where} failed: {first}")

    def status(self) -> dict:
        """GetStatus, for Check Connection."""
        (answer,), _ = self.query([{"GetStatus": {}}])
        return answer["GetStatus"]

    def close(self) -> None:
        while True:
            try:
                _close(self._idle.get_nowait())
            except queue.Empty:
                return


def _close(conn: Any) -> None:
    try:
        conn.close()
    except Exception:  # noqa: BLE001 - closing a broken socket may fail in any way
        pass


_clients: dict[ConnectionSettings, TcpClient] = {}
_clients_lock = threading.Lock()


def client_for(settings: ConnectionSettings) -> TcpClient:
    """A shared TcpClient per distinct connection settings (so sessions are reused across requests)."""
    with _clients_lock:
        c = _clients.get(settings)
        if c is None:
            c = _clients[settings] = TcpClient(settings)
        return c
