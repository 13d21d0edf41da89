"""Who is browsing: a lensdb session kept in cookies, opened by the login form.

The cookies hold the session and refresh tokens that `Authenticate` would hand a client (the
same `AuthService`, so the same users, roles, expiry and revocation): an expired session is
renewed with the refresh token once, transparently. A request may also send
`Authorization: Bearer <session token>` (scripts, the benchmark). Under `--dev` a request with
neither is let through as nobody in particular, with every permission.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from lensdb.auth.service import AuthService, Principal
from lensdb.auth.store import AuthError, IssuedSession

SESSION_COOKIE = "lensdb_browse"
REFRESH_COOKIE = "lensdb_browse_refresh"
COOKIE_PATH = "/browse"


@dataclass(frozen=True)
class Visitor:
    """The principal of a request (None: a --dev visitor without login), and a renewed session
    to put in the cookies of the answer, if one was opened."""

    principal: Principal | None
    renewed: IssuedSession | None = None

    @property
    def name(self) -> str:
        return self.principal.username if self.principal else "dev (no login)"


class BrowseSessions:
    def __init__(self, auth: AuthService, dev: bool) -> None:
        self.auth = auth
        self.dev = dev

    def visitor(self, request: Request) -> Visitor | None:
        """Who is asking, or None when they must log in first."""
        scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and bearer.strip():
            principal = self.auth.principal(bearer.strip())
            return Visitor(principal) if principal else None
        principal = self.auth.principal(request.cookies.get(SESSION_COOKIE))
        if principal is not None:
            return Visitor(principal)
        refresh = request.cookies.get(REFRESH_COOKIE)
        if refresh:
            try:
                issued = self.auth.refresh(refresh)
            except AuthError:
                issued = None
            if issued is not None:
                principal = self.auth.principal(issued.session_token)
                if principal is not None:
                    return Visitor(principal, issued)
        return Visitor(None) if self.dev else None

    def log_in(self, username: str, password: str, token: str) -> IssuedSession:
        """A new session for a user/password or an API token; AuthError says why not."""
        if token.strip():
            return self.auth.login_token(token.strip(), username.strip() or None)
        if not username.strip():
            raise AuthError("Type a username and password, or an API token")
        return self.auth.login_password(username.strip(), password)


def set_cookies(response: Response, issued: IssuedSession, secure: bool) -> None:
    common = {"path": COOKIE_PATH, "httponly": True, "samesite": "lax", "secure": secure}
    response.set_cookie(SESSION_COOKIE, issued.session_token, max_age=issued.session_ttl, **common)
    response.set_cookie(REFRESH_COOKIE, issued.refresh_token, max_age=issued.refresh_ttl, **common)


def clear_cookies(response: Response) -> None:
    for name in (SESSION_COOKIE, REFRESH_COOKIE):
        response.delete_cookie(name, path=COOKIE_PATH)
