"""Users, roles, API tokens and sessions, persisted in their own SQLite file.

Every method is one transaction (or joins the caller's `transaction()`), so the server and
the `lensdb users/tokens` commands can change the same file. Tokens are kept only as
SHA-256 hashes plus a short shown prefix; passwords as argon2id hashes.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from lensdb.auth import credentials, permissions
from lensdb.auth.permissions import Permissions
from lensdb.errors import LensdbError, write_refusal_cause

FILENAME = "auth.sqlite3"
ADMIN = "admin"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS roles (
    name TEXT PRIMARY KEY,
    permissions TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT,
    email TEXT,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS user_roles (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role TEXT NOT NULL REFERENCES roles(name) ON DELETE CASCADE ON UPDATE CASCADE,
    PRIMARY KEY (user_id, role)
);
CREATE TABLE IF NOT EXISTS api_tokens (
    id INTEGER PRIMARY KEY,
    hash TEXT NOT NULL UNIQUE,
    shown TEXT NOT NULL,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created REAL NOT NULL,
    expires REAL
);
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY,
    session_hash TEXT NOT NULL UNIQUE,
    refresh_hash TEXT UNIQUE,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    api_token_id INTEGER REFERENCES api_tokens(id) ON DELETE CASCADE,
    session_expires REAL NOT NULL,
    refresh_expires REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_user ON sessions(user_id);
CREATE INDEX IF NOT EXISTS sessions_token ON sessions(api_token_id);
"""


class AuthError(LensdbError):
    """A user/role/token operation that cannot be done; the message is shown to clients."""


class AuthUnavailable(LensdbError):
    """The user store cannot be reached now (PostgreSQL down or restarting): the query gets
    this status and text, the client's connection stays open, and the next query tries again."""


@dataclass(frozen=True)
class User:
    id: int
    username: str
    email: str | None
    roles: tuple[str, ...]
    password_hash: str | None


@dataclass(frozen=True)
class ApiToken:
    id: int
    shown: str
    user_id: int
    expires: float | None


@dataclass(frozen=True)
class SessionRecord:
    id: int
    user_id: int
    api_token_id: int | None
    session_expires: float
    refresh_expires: float


@dataclass(frozen=True)
class IssuedSession:
    session_token: str
    refresh_token: str
    session_ttl: int
    refresh_ttl: int


class AuthStore:
    """Thread-safe access to the auth database (one connection, one lock)."""

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        if path.is_dir() or path.suffix == "":
            path = path / FILENAME
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.RLock()
        self._depth = 0
        self._writes = 0
        self._conn = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, timeout=30
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._conn.executescript(_SCHEMA)
        path.chmod(0o600)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- transactions and change detection -------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Join or open a write transaction; rolled back if the block raises."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self._conn
                finally:
                    self._depth -= 1
                return
            self._depth = 1
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                yield self._conn
                self._conn.execute("COMMIT")
                self._writes += 1
            except sqlite3.Error as e:
                # A full or read-only disk fails the write or its COMMIT (a login's session
                # row, typically): answer why, instead of dropping the client's connection.
                _rollback(self._conn)
                raise _refused(e, self.path.parent) from e
            except BaseException:
                _rollback(self._conn)
                raise
            finally:
                self._depth = 0

    def version(self) -> tuple[int, int]:
        """Changes whenever this store or another process commits to the file."""
        with self._lock:
            (dv,) = self._conn.execute("PRAGMA data_version").fetchone()
            return self._writes, dv

    def _one(self, sql: str, args: Iterable = ()) -> tuple | None:
        with self._lock:
            return self._conn.execute(sql, tuple(args)).fetchone()

    # -- bootstrap ---------------------------------------------------------------------

    def bootstrap(self, admin_password: str | None) -> str | None:
        """On an empty store create the `admin` role and user.

        Returns the password when one had to be generated (to be shown exactly once).
        """
        with self.transaction() as c:
            if c.execute("SELECT 1 FROM users LIMIT 1").fetchone():
                return None
            c.execute(
                "INSERT OR REPLACE INTO roles VALUES (?, ?)",
                (ADMIN, json.dumps(permissions.ALL_PERMISSIONS)),
            )
            generated = None
            if not admin_password:
                admin_password = generated = credentials.generate_password()
            self.create_user(ADMIN, admin_password, [ADMIN])
            return generated

    # -- roles -------------------------------------------------------------------------

    def role(self, name: str) -> Permissions | None:
        row = self._one("SELECT permissions FROM roles WHERE name = ?", (name,))
        return json.loads(row[0]) if row else None

    def roles(self) -> dict[str, Permissions]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT name, permissions FROM roles ORDER BY name"
            ).fetchall()
        return {name: json.loads(p) for name, p in rows}

    def create_role(self, name: str, perms: Permissions) -> None:
        if not isinstance(name, str) or not name:
            raise AuthError("role name must be a non-empty string")
        with self.transaction() as c:
            if c.execute("SELECT 1 FROM roles WHERE name = ?", (name,)).fetchone():
                raise AuthError(f"role '{name}' already exists")
            c.execute("INSERT INTO roles VALUES (?, ?)", (name, json.dumps(perms)))

    def update_role(self, name: str, perms: Permissions) -> None:
        if name == ADMIN:
            raise AuthError("the built-in 'admin' role cannot be changed")
        with self.transaction() as c:
            current = self.role(name)
            if current is None:
                raise AuthError(f"role '{name}' does not exist")
            merged = permissions.merge(current, perms)
            c.execute("UPDATE roles SET permissions = ? WHERE name = ?", (json.dumps(merged), name))

    def remove_role(self, name: str) -> None:
        if name == ADMIN:
            raise AuthError("the built-in 'admin' role cannot be removed")
        with self.transaction() as c:
            if c.execute("DELETE FROM roles WHERE name = ?", (name,)).rowcount == 0:
                raise AuthError(f"role '{name}' does not exist")

    # -- users -------------------------------------------------------------------------

    def user(self, username: str) -> User | None:
        row = self._one("SELECT id FROM users WHERE username = ?", (username,))
        return self.user_by_id(row[0]) if row else None

    def user_by_id(self, user_id: int) -> User | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT id, username, email, password_hash FROM users WHERE id = ?", (user_id,)
            ).fetchone()
            if row is None:
                return None
            roles = self._conn.execute(
                "SELECT role FROM user_roles WHERE user_id = ? ORDER BY role", (user_id,)
            ).fetchall()
        return User(row[0], row[1], row[2], tuple(r for (r,) in roles), row[3])

    def users(self) -> list[User]:
        with self._lock:
            ids = [i for (i,) in self._conn.execute("SELECT id FROM users ORDER BY username")]
            return [u for u in map(self.user_by_id, ids) if u is not None]

    def _set_roles(self, c: sqlite3.Connection, user_id: int, roles: Iterable[str]) -> None:
        roles = list(roles)
        for r in roles:
            if (
                not isinstance(r, str)
                or not c.execute("SELECT 1 FROM roles WHERE name = ?", (r,)).fetchone()
            ):
                raise AuthError(f"role '{r}' does not exist")
        c.execute("DELETE FROM user_roles WHERE user_id = ?", (user_id,))
        c.executemany(
            "INSERT OR IGNORE INTO user_roles VALUES (?, ?)", [(user_id, r) for r in roles]
        )

    def create_user(
        self,
        username: str,
        password: str | None,
        roles: Iterable[str] = (),
        email: str | None = None,
    ) -> User:
        if not isinstance(username, str) or not username:
            raise AuthError("username must be a non-empty string")
        if password is not None and not isinstance(password, str):
            raise AuthError("password must be a string")
        pw_hash = credentials.hash_password(password) if password else None
        with self.transaction() as c:
            if c.execute("SELECT 1 FROM users WHERE username = ?", (username,)).fetchone():
                raise AuthError(f"user '{username}' already exists")
            cur = c.execute(
                "INSERT INTO users (username, password_hash, email, created) VALUES (?, ?, ?, ?)",
                (username, pw_hash, email, time.time()),
            )
            self._set_roles(c, cur.lastrowid, roles)
            user = self.user_by_id(cur.lastrowid)
        assert user is not None
        return user

    def update_user(
        self,
        username: str,
        *,
        password: str | None = None,
        email: str | None = None,
        roles: Iterable[str] | None = None,
        end_sessions: bool = True,
    ) -> None:
        """Change a user; any change of password, email or roles ends their sessions."""
        pw_hash = credentials.hash_password(password) if password else None
        with self.transaction() as c:
            user = self._require_user(username)
            if pw_hash is not None:
                c.execute("UPDATE users SET password_hash = ? WHERE id = ?", (pw_hash, user.id))
            if email is not None:
                c.execute("UPDATE users SET email = ? WHERE id = ?", (email, user.id))
            if roles is not None:
                self._set_roles(c, user.id, roles)
            if end_sessions and (pw_hash is not None or email is not None or roles is not None):
                c.execute("DELETE FROM sessions WHERE user_id = ?", (user.id,))

    def remove_user(self, username: str) -> None:
        with self.transaction() as c:
            user = self._require_user(username)
            if ADMIN in user.roles and self._admin_count(c) == 1:
                raise AuthError(f"'{username}' is the last user with the admin role")
            c.execute("DELETE FROM users WHERE id = ?", (user.id,))

    def _admin_count(self, c: sqlite3.Connection) -> int:
        return c.execute("SELECT COUNT(*) FROM user_roles WHERE role = ?", (ADMIN,)).fetchone()[0]

    def _require_user(self, username: str) -> User:
        user = self.user(username) if isinstance(username, str) else None
        if user is None:
            raise AuthError(f"user '{username}' does not exist")
        return user

    # -- API tokens ----------------------------------------------------------------------

    def add_token(self, username: str, token: str, expires_in: float | None = None) -> None:
        if not isinstance(token, str) or len(token) < 20:
            raise AuthError("a token must be a string of at least 20 characters")
        h = credentials.token_hash(token)
        expires = time.time() + expires_in if expires_in else None
        with self.transaction() as c:
            user = self._require_user(username)
            row = c.execute("SELECT user_id FROM api_tokens WHERE hash = ?", (h,)).fetchone()
            if row is not None:
                if row[0] != user.id:
                    raise AuthError("that token is already assigned to another user")
                return
            c.execute(
                "INSERT INTO api_tokens (hash, shown, user_id, created, expires) VALUES (?, ?, ?, ?, ?)",
                (h, credentials.shown(token), user.id, time.time(), expires),
            )

    def remove_tokens(self, username: str | None, tokens: Iterable[str]) -> int:
        """Revoke tokens given whole or by a leading prefix; their sessions end with them."""
        removed = 0
        with self.transaction() as c:
            user_id = self._require_user(username).id if username is not None else None
            for tok in tokens:
                if not isinstance(tok, str) or not tok:
                    raise AuthError("tokens to remove must be non-empty strings")
                ids = self._match_tokens(c, tok, user_id)
                if not ids:
                    raise AuthError(f"no token matching '{credentials.shown(tok)}'")
                if len(ids) > 1:
                    raise AuthError(f"'{tok}' matches {len(ids)} tokens; give more characters")
                c.execute("DELETE FROM api_tokens WHERE id = ?", (ids[0],))
                removed += 1
        return removed

    def _match_tokens(self, c: sqlite3.Connection, tok: str, user_id: int | None) -> list[int]:
        scope, args = ("AND user_id = ?", [user_id]) if user_id is not None else ("", [])
        rows = c.execute(
            f"SELECT id FROM api_tokens WHERE hash = ? {scope}",
            [credentials.token_hash(tok), *args],
        ).fetchall()
        if not rows and len(tok) <= credentials.SHOWN_CHARS:
            rows = c.execute(
                f"SELECT id FROM api_tokens WHERE shown LIKE ? ESCAPE '\\' {scope}",
                [_like_prefix(tok), *args],
            ).fetchall()
        return [i for (i,) in rows]

    def token(self, token: str) -> ApiToken | None:
        row = self._one(
            "SELECT id, shown, user_id, expires FROM api_tokens WHERE hash = ?",
            (credentials.token_hash(token),),
        )
        return ApiToken(*row) if row else None

    def tokens_of(self, user_id: int) -> list[ApiToken]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, shown, user_id, expires FROM api_tokens WHERE user_id = ? ORDER BY created",
                (user_id,),
            ).fetchall()
        return [ApiToken(*r) for r in rows]

    # -- sessions --------------------------------------------------------------------

    def open_session(
        self, user_id: int, api_token_id: int | None, session_ttl: int, refresh_ttl: int
    ) -> IssuedSession:
        now = time.time()
        session = credentials.new_token(credentials.SESSION_PREFIX)
        refresh = credentials.new_token(credentials.REFRESH_PREFIX)
        with self.transaction() as c:
            if api_token_id is not None:  # a session never outlives the token it came from
                row = c.execute(
                    "SELECT expires FROM api_tokens WHERE id = ?", (api_token_id,)
                ).fetchone()
                if row is not None and row[0] is not None:
                    left = max(1, int(row[0] - now))
                    session_ttl, refresh_ttl = min(session_ttl, left), min(refresh_ttl, left)
            c.execute(
                "DELETE FROM sessions WHERE session_expires < ? AND refresh_expires < ?", (now, now)
            )
            c.execute(
                "INSERT INTO sessions (session_hash, refresh_hash, user_id, api_token_id, session_expires, refresh_expires)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    credentials.token_hash(session),
                    credentials.token_hash(refresh),
                    user_id,
                    api_token_id,
                    now + session_ttl,
                    now + refresh_ttl,
                ),
            )
        return IssuedSession(session, refresh, session_ttl, refresh_ttl)

    def session(self, session_token: str) -> SessionRecord | None:
        row = self._one(
            "SELECT id, user_id, api_token_id, session_expires, refresh_expires FROM sessions WHERE session_hash = ?",
            (credentials.token_hash(session_token),),
        )
        return SessionRecord(*row) if row else None

    def rotate(
        self, refresh_token: str, session_ttl: int, refresh_ttl: int, grace: float
    ) -> IssuedSession | None:
        """Swap a refresh token for a new session; None if it is unknown or expired.

        The old session token stays valid for `grace` seconds (never beyond its own
        expiry) so queries already in flight on other connections are not rejected.
        """
        now = time.time()
        with self.transaction() as c:
            row = c.execute(
                "SELECT id, user_id, api_token_id, session_expires, refresh_expires FROM sessions WHERE refresh_hash = ?",
                (credentials.token_hash(refresh_token),),
            ).fetchone()
            if row is None or row[4] < now:
                return None
            old = SessionRecord(*row)
            c.execute(
                "UPDATE sessions SET refresh_hash = NULL, session_expires = ?, refresh_expires = ? WHERE id = ?",
                (
                    min(old.session_expires, now + grace),
                    min(old.session_expires, now + grace),
                    old.id,
                ),
            )
            return self.open_session(old.user_id, old.api_token_id, session_ttl, refresh_ttl)

    def end_sessions(self, username: str) -> int:
        with self.transaction() as c:
            user = self._require_user(username)
            return c.execute("DELETE FROM sessions WHERE user_id = ?", (user.id,)).rowcount


def _rollback(conn: sqlite3.Connection) -> None:
    """Roll back if still in a transaction: after SQLITE_FULL SQLite may already have, and a
    second ROLLBACK would fail with a message that hides the real cause."""
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # the caller raises the error that says what happened


def _refused(error: sqlite3.Error, folder: Path) -> LensdbError:
    cause = write_refusal_cause(folder, sqlite_code=getattr(error, "sqlite_errorcode", None))
    if cause is None:
        return AuthError(f"the user database failed: {error}")
    return AuthError(f"the user database cannot be written: {cause}; nothing was changed")


def _like_prefix(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def open_auth_store(data: str | Path) -> AuthStore:
    """The auth store of a dataset: `auth.sqlite3` in a data folder, or tables in the
    PostgreSQL database a `postgresql://` URL names (shared by every server on it)."""
    from urllib.parse import urlsplit

    if isinstance(data, str) and urlsplit(data).scheme in ("postgresql", "postgres"):
        from lensdb.auth.pgstore import PostgresAuthStore

        return PostgresAuthStore(str(data))
    return AuthStore(data)
