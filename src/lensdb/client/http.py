"""lensdb over its HTTP port: queries through ApertureDB's REST endpoint `/api/`, and the gateway's routes.

It logs in once (Authenticate through /api/) and sends the session as `Bearer` to both; an
expired session is renewed once per call. httpx because it is already lensdb's HTTP client
library (tests, connector) and verifies TLS like `ssl` does, with a CA file or off.
"""

from __future__ import annotations

import base64
import json
import ssl
from typing import Any

import httpx

from lensdb.client.base import DatabaseUnavailable, refusal
from lensdb.errors import SUCCESS


class HttpClient:
    def __init__(
        self,
        base_url: str,
        username: str = "admin",
        password: str = "",
        token: str = "",
        verify: bool | str = True,
        timeout: float = 120.0,
    ) -> None:
        """`verify`: True (system CAs), a CA certificate file (e.g. lensdb's DATA/tls/ca.crt) or False."""
        self.base_url = base_url.rstrip("/")
        self._login = (
            {"username": username, "password": password} if not token else {"token": token}
        )
        context: bool | ssl.SSLContext = (
            ssl.create_default_context(cafile=verify) if isinstance(verify, str) else verify
        )
        self.client = httpx.Client(base_url=self.base_url, verify=context, timeout=timeout)
        self._session: str | None = None

    def close(self) -> None:
        self.client.close()

    def session_token(self) -> str:
        if self._session is None:
            self._session = self._authenticate()
        return self._session

    def _authenticate(self) -> str:
        r = self._send("POST", "/api/", json=[{"Authenticate": self._login}])
        try:
            ((name, answer),) = r.json()["json"][0].items()
            return answer["session_token"]
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise DatabaseUnavailable(
                f"The server at {self.base_url} refused the login: {_info(r)}. "
                "Check the user and password (or the token)."
            ) from None

    def _send(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            return self.client.request(method, path, **kw)
        except httpx.ConnectError as exc:
            if "CERTIFICATE_VERIFY_FAILED" in str(exc):
                raise DatabaseUnavailable(
                    f"TLS problem talking to {self.base_url}: its certificate is not trusted ({exc}). "
                    "Give the server's CA certificate (lensdb's DATA/tls/ca.crt for its self-signed "
                    "one), or turn certificate checks off."
                ) from None
            raise DatabaseUnavailable(
                f"Nothing answers at {self.base_url} ({exc}). "
                "Is `lensdb serve` running, and is the HTTP address right?"
            ) from None
        except httpx.HTTPError as exc:
            raise DatabaseUnavailable(f"No usable answer from {self.base_url} ({exc}).") from None

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        """Call a gateway route (e.g. POST /labelstudio/tasks) with the session."""
        headers = kw.pop("headers", {})
        for attempt in (0, 1):
            r = self._send(
                method,
                path,
                headers={**headers, "Authorization": f"Bearer {self.session_token()}"},
                **kw,
            )
            if r.status_code == 401 and attempt == 0:
                self._session = None  # expired session: log in again once
                continue
            return r
        return r

    def query(
        self,
        commands: list[dict],
        blobs: list[bytes] | None = None,
        ok: frozenset[int] | tuple[int, ...] = SUCCESS,
    ) -> tuple[list[dict], list[bytes]]:
        """Run one transaction through /api/ (multipart: the query, then each blob in order)."""
        files = [("query", (None, json.dumps(commands), "application/json"))]
        files += [("blobs", ("blob", bytes(b), "application/octet-stream")) for b in blobs or []]
        response, out = self._post_query(files)
        error = refusal(response, ok)
        if isinstance(error, DatabaseUnavailable):  # expired session: log in again once
            self._session = None
            response, out = self._post_query(files)
            error = refusal(response, ok)
        if error is not None:
            raise error
        return response, out

    def _post_query(self, files: list) -> tuple[Any, list[bytes]]:
        r = self._send(
            "POST",
            "/api/",
            files=files,
            headers={"Authorization": f"Bearer {self.session_token()}"},
        )
        try:
            body = r.json()
            return body["json"], [base64.b64decode(b) for b in body.get("blobs") or []]
        except (ValueError, KeyError, TypeError, AttributeError):
            raise DatabaseUnavailable(
                f"{self.base_url}/api/ did not answer like lensdb: {_info(r)}"
            ) from None

    def status(self) -> dict:
        (answer,), _ = self.query([{"GetStatus": {}}])
        return answer["GetStatus"]


def _info(r: httpx.Response) -> str:
    try:
        body = r.json()
    except ValueError:
        return f"HTTP {r.status_code}"
    if isinstance(body, dict) and "json" in body:
        body = body["json"]
    if isinstance(body, dict):
        return str(body.get("info") or body)
    return str(body)[:300]
