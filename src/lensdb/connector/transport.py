"""An httpx transport that acknowledges every answer at once (Linux's TCP_QUICKACK).

Label Studio's own server (`label-studio start`, Django's runserver) writes an answer's status
line, its headers and its body in separate small writes with Nagle's algorithm on: the second
write waits until the first is acknowledged, and Linux delays that acknowledgement by up to 40 ms.
Every request to it then takes ~45 ms longer than Label Studio works on it (`bench/ls_requests.py`,
Label Studio 1.23.2, 30 requests each: moving a Data Manager view took 57 ms against 13 ms of its
CPU; reading a project 64 ms against 21 ms). A full pull of 10,000 tasks makes about 40
requests, most of them between two of Label Studio's exports, and Label Studio waits for each:
about 1 s of a 10 s pull.

The client cannot switch Nagle off on Label Studio's side, but it can acknowledge at once:
TCP_QUICKACK before each read (the kernel leaves quick-ack mode by itself, so it is set every
time). The same requests then take 12 and 18 ms. Elsewhere than Linux the option does not
exist and httpx's own transport is used, as it is behind a proxy named in the environment (httpx
follows those only with a transport of its own making).

httpx takes no network backend of its own, so the transport replaces its connection pool by one
built on httpcore's public backend interface, with the same TLS settings.
"""

from __future__ import annotations

import socket
import ssl
import urllib.request
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)


class _QuickAckStream(httpcore.NetworkStream):
    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream
        self._sock = stream.get_extra_info("socket")

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        if self._sock is not None and QUICKACK is not None:
            try:
                self._sock.setsockopt(socket.IPPROTO_TCP, QUICKACK, 1)
            except OSError:  # closed meanwhile: the read reports it
                pass
        return self._stream.read(max_bytes, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, timeout)

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        return _QuickAckStream(self._stream.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _QuickAckBackend(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self._backend = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._backend.connect_tcp(host, port, timeout, local_address, socket_options)
        return _QuickAckStream(stream)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        return self._backend.connect_unix_socket(path, timeout, socket_options)

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


def _proxied(url: str) -> bool:
    """Whether the environment's proxy settings (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, NO_PROXY,
    which httpx follows when it makes its own transport) send requests to `url` through a proxy."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    if not (proxies.get(parts.scheme) or proxies.get("all")):
        return False
    return not urllib.request.proxy_bypass(parts.hostname or "")


def quick_ack_transport(
    url: str, verify: ssl.SSLContext | bool = True
) -> httpx.BaseTransport | None:
    """A transport for requests to `url` that acknowledges answers at once; None (httpx's own,
    with its proxies) where the system has no TCP_QUICKACK or a proxy from the environment
    stands between: the answers then come from the proxy."""
    if QUICKACK is None or _proxied(url):
        return None
    # One TLS context (loading the CA bundle costs milliseconds), for both pools.
    context = verify if isinstance(verify, ssl.SSLContext) else httpx.create_ssl_context(verify)
    transport = httpx.HTTPTransport(verify=context)
    transport._pool = httpcore.ConnectionPool(  # noqa: SLF001 - httpx has no backend argument
        ssl_context=context,
        max_connections=100,  # httpx's default limits (it exports no constant for them)
        max_keepalive_connections=20,
        keepalive_expiry=5.0,
        network_backend=_QuickAckBackend(),
    )
    return transport
