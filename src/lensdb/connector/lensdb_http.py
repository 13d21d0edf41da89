"""A session on lensdb's HTTP port: log in through /api/ (Authenticate), then call gateway routes with Bearer."""

from __future__ import annotations

from typing import Any

import httpx


class LensdbHttpError(Exception):
    """lensdb's HTTP port could not be used; the message says what to do."""


class LensdbHttp:
    def __init__(self, base_url: str, username: str = "admin", password: str = "", token: str = "",
                 verify: bool | str = True, timeout: float = 120.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._login = {"username": username, "password": password} if not token else {"token": token}
        self.client = httpx.Client(base_url=self.base_url, verify=verify, timeout=timeout)
        self._session: str | None = None

    def close(self) -> None:
        self.client.close()

    def session_token(self) -> str:
        if self._session is None:
            self._session = self._authenticate()
        return self._session

    def _authenticate(self) -> str:
        try:
            r = self.client.post("/api/", json=[{"Authenticate": self._login}])
        except httpx.HTTPError as exc:
            raise LensdbHttpError(f"lensdb's HTTP port at {self.base_url} does not answer ({exc}). "
                                  "Is `lensdb serve` running, and is --lensdb-http right?") from None
        try:
            body = r.json()["json"]
            return body[0]["Authenticate"]["session_token"]
        except (ValueError, KeyError, IndexError, TypeError):
            info = _info(r)
            raise LensdbHttpError(f"lensdb refused the login at {self.base_url}: {info}. "
                                  "Check --lensdb-user/--lensdb-password (or --lensdb-token).") from None

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        for attempt in (0, 1):
            headers = {**kw.pop("headers", {}), "Authorization": f"Bearer {self.session_token()}"}
            try:
                r = self.client.request(method, path, headers=headers, **kw)
            except httpx.HTTPError as exc:
                raise LensdbHttpError(f"lensdb at {self.base_url} does not answer ({exc}). "
                                      "Is `lensdb serve` running?") from None
            if r.status_code == 401 and attempt == 0:
                self._session = None  # expired session: log in again once
                continue
            return r
        return r


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
