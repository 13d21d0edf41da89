"""Signed, expiring media URLs: HMAC-SHA256 over the path, the expiry and every other parameter.

Signing the parameters too means a link to a thumbnail or a crop cannot be turned into a link to
the full image by editing its query string.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Iterable, Mapping
from urllib.parse import urlencode

EXPIRES, SIGNATURE = "exp", "sig"


def _canonical(path: str, params: Iterable[tuple[str, str]]) -> bytes:
    items = sorted((k, v) for k, v in params if k != SIGNATURE)
    return f"{path}?{urlencode(items)}".encode()


class Signer:
    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the signing secret is too short")
        self._secret = secret

    def _mac(self, path: str, params: Iterable[tuple[str, str]]) -> str:
        digest = hmac.new(self._secret, _canonical(path, params), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def sign(
        self,
        path: str,
        ttl: int,
        params: Mapping[str, object] | None = None,
        now: float | None = None,
    ) -> str:
        """`path?params&exp=..&sig=..`, valid for `ttl` seconds."""
        expires = int((now if now is not None else time.time()) + ttl)
        items = [(k, str(v)) for k, v in (params or {}).items()] + [(EXPIRES, str(expires))]
        items.append((SIGNATURE, self._mac(path, items)))
        return f"{path}?{urlencode(items)}"

    def check(
        self, path: str, params: Iterable[tuple[str, str]], now: float | None = None
    ) -> str | None:
        """None when the signature is valid and unexpired, otherwise why not."""
        items = list(params)
        given = [v for k, v in items if k == SIGNATURE]
        expiry = [v for k, v in items if k == EXPIRES]
        if len(given) != 1 or len(expiry) != 1:
            return "missing or repeated signature parameters"
        if not hmac.compare_digest(given[0].encode(), self._mac(path, items).encode()):
            return "bad signature"
        try:
            expires = int(expiry[0])
        except ValueError:
            return "bad expiry"
        if expires < (now if now is not None else time.time()):
            return "link expired"
        return None

    def remaining(self, params: Iterable[tuple[str, str]], now: float | None = None) -> int:
        for k, v in params:
            if k == EXPIRES and v.isdigit():
                return max(0, int(v) - int(now if now is not None else time.time()))
        return 0
