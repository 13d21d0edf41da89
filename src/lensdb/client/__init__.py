"""The lensdb client: one API (`Client`) whether lensdb is reached over TCP, HTTP or in-process.

    from lensdb.client import connect
    db = connect("127.0.0.1:55555", password="...", ca_cert="data/tls/ca.crt")  # TcpClient
    db = connect("https://host:55556", password="...")                           # HttpClient
    responses, blobs = db.query([{"FindImage": {"results": {"count": True}}}])

Used by the Label Studio plugin, the connector and the CLI. Importing it loads neither the
engine nor Pillow (a test holds that), so it is cheap inside Label Studio's processes.
"""

from __future__ import annotations

from lensdb.client.base import Client, DatabaseError, DatabaseUnavailable
from lensdb.client.embedded import EmbeddedClient
from lensdb.client.http import HttpClient
from lensdb.client.tcp import ConnectionSettings, TcpClient, client_for, split_hostport

__all__ = [
    "Client",
    "ConnectionSettings",
    "DatabaseError",
    "DatabaseUnavailable",
    "EmbeddedClient",
    "HttpClient",
    "TcpClient",
    "client_for",
    "connect",
    "split_hostport",
]


def connect(
    address: str,
    username: str = "admin",
    password: str = "",
    token: str = "",
    *,
    tls: bool = True,
    ca_cert: str | None = None,
    insecure: bool = False,
    timeout: float = 10.0,
) -> Client:
    """A client for `HOST:PORT` (TCP, TLS unless `tls=False`) or an `http(s)://` URL.

    Certificates are checked by default: give `ca_cert` for a private CA (lensdb's
    self-signed one is DATA/tls/ca.crt), or `insecure=True` to skip the check.
    """
    if address.startswith(("http://", "https://")):
        verify: bool | str = False if insecure else (ca_cert or True)
        return HttpClient(address, username, password, token, verify=verify, timeout=timeout)
    host, port = split_hostport(address)
    return TcpClient(
        ConnectionSettings(
            host=host,
            port=port,
            username=username,
            password=password,
            token=token,
            use_ssl=tls,
            verify_certificate=not insecure,
            ca_cert=ca_cert or "",
        ),
        timeout=timeout,
    )
