"""Sessions and permission checks on the query path.

Lookups are cached in memory and the cache is dropped whenever the auth file changes
(this process's writes, or another process such as `lensdb users` committing), so role
changes, revocations and removed users take effect on the very next query.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from lensdb.auth import credentials, permissions
from lensdb.auth.permissions import Permissions
from lensdb.auth.store import AuthError, AuthStore, IssuedSession
from lensdb.auth.throttle import LoginThrottle, TooManyAttempts

log = logging.getLogger(__name__)

DEFAULT_SESSION_TTL = 3600
DEFAULT_REFRESH_TTL = 86400
# How long a refreshed-away session token keeps working for queries already in flight.
REFRESH_GRACE_SECONDS = 30.0


@dataclass(frozen=True)
class Principal:
    """Who a valid session belongs to, with the permissions of their roles right now."""

    user_id: int
    username: str
    roles: tuple[Permissions, ...]
    session_id: int

    def allows(self, kind: str, action: str) -> bool:
        return permissions.allows(self.roles, kind, action)

    @property
    def read_only(self) -> bool:
        """No role lets this user create, update or delete anything."""
        return not permissions.may_change(self.roles)


class AuthService:
    def __init__(
        self,
        store: AuthStore,
        session_ttl: int = DEFAULT_SESSION_TTL,
        refresh_ttl: int = DEFAULT_REFRESH_TTL,
        throttle: LoginThrottle | None = None,
    ) -> None:
        if session_ttl <= 0 or refresh_ttl <= 0:
            raise ValueError("session and refresh TTLs must be positive")
        self.store = store
        self.session_ttl = int(session_ttl)
        self.refresh_ttl = int(refresh_ttl)
        self.throttle = throttle or LoginThrottle()
        self._lock = threading.Lock()
        self._seen_version: tuple[int, int] | None = None
        self._principals: dict[str, tuple[Principal, float]] = {}

    def _sync(self) -> None:
        version = self.store.version()
        if version != self._seen_version:
            self._principals.clear()
            self._seen_version = version

    # -- logging in --------------------------------------------------------------------

    def login_password(
        self, username: str, password: str, address: str | None = None
    ) -> IssuedSession:
        """A new session for the right password; failures are counted (see auth/throttle.py)."""
        name = username if isinstance(username, str) else ""
        self._check_throttle(name, address)
        user = self.store.user(name) if name else None
        # Verify even for unknown users so the answer takes the same time.
        ok = credentials.verify_password(user.password_hash if user else None, str(password))
        if user is None or not ok:
            self.throttle.failed(name, address)
            log.info("failed login for user %r from %s", name[:64], address or "?")
            raise AuthError("Authentication failed: wrong username or password")
        return self.store.open_session(user.id, None, self.session_ttl, self.refresh_ttl)

    def login_token(
        self, token: str, username: str | None = None, address: str | None = None
    ) -> IssuedSession:
        self._check_throttle(username or "", address)
        api = self.store.token(token) if isinstance(token, str) else None
        try:
            if api is None:
                raise AuthError("Authentication failed: unknown or revoked token")
            if api.expires is not None and api.expires < time.time():
                raise AuthError("Authentication failed: token expired")
            user = self.store.user_by_id(api.user_id)
            if user is None or (username and username != user.username):
                raise AuthError("Authentication failed: token does not belong to this user")
        except AuthError as e:
            self.throttle.failed(username or "", address)
            log.info("failed token login from %s: %s", address or "?", e)
            raise
        # The store ends the session with the token when the token expires first.
        return self.store.open_session(user.id, api.id, self.session_ttl, self.refresh_ttl)

    def _check_throttle(self, username: str, address: str | None) -> None:
        try:
            self.throttle.check(username, address)
        except TooManyAttempts as e:
            log.debug("login for user %r from %s refused: %s", username[:64], address, e)
            raise AuthError(str(e)) from None

    def refresh(self, refresh_token: str) -> IssuedSession:
        issued = None
        if isinstance(refresh_token, str) and refresh_token:
            issued = self.store.rotate(
                refresh_token, self.session_ttl, self.refresh_ttl, REFRESH_GRACE_SECONDS
            )
        if issued is None:
            raise AuthError("Invalid or expired refresh token")
        return issued

    # -- the query path ----------------------------------------------------------------

    def principal(self, session_token: str | None) -> Principal | None:
        """The principal behind a session token, or None if it is missing/expired/ended."""
        if not session_token:
            return None
        now = time.time()
        with self._lock:
            self._sync()
            cached = self._principals.get(session_token)
            if cached is not None:
                principal, expires = cached
                return principal if expires > now else None
            record = self.store.session(session_token)
            if record is None or record.session_expires <= now:
                return None
            user = self.store.user_by_id(record.user_id)
            if user is None:
                return None
            roles = tuple(p for p in map(self.store.role, user.roles) if p is not None)
            principal = Principal(user.id, user.username, roles, record.id)
            if len(self._principals) > 100_000:  # bound memory against token spraying
                self._principals.clear()
            self._principals[session_token] = (principal, record.session_expires)
            return principal

    def denied(self, principal: Principal, commands: Iterable[str]) -> str | None:
        """Why the principal may not run these commands, or None if all are allowed."""
        for i, name in enumerate(commands):
            need = permissions.required(name)
            if need is not None and not principal.allows(*need):
                kind, action = need
                return (
                    f"Permission denied: user '{principal.username}' may not {action} {kind}"
                    f" ({name}, command {i}); nothing was changed"
                )
        return None
