"""Passwords (argon2id) and bearer tokens (random strings stored only as SHA-256)."""

from __future__ import annotations

import hashlib
import secrets
import string

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

API_PREFIX = "adbp_"
SESSION_PREFIX = "adbs_"
REFRESH_PREFIX = "adbr_"
# Leading characters kept in clear so a token can be listed and revoked by prefix.
SHOWN_CHARS = 13

_ALPHABET = string.ascii_letters + string.digits
_hasher = PasswordHasher()
# Verified against when the user does not exist, so timing does not reveal usernames.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


def new_token(prefix: str, length: int = 35) -> str:
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(length))


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def shown(token: str) -> str:
    return token[:SHOWN_CHARS]


class HashedPassword(str):
    """An argon2 hash standing in for a password that was hashed ahead of time.

    Hashing is slow on purpose; callers hash before taking the auth store's lock.
    """


def hash_password(password: str) -> str:
    if isinstance(password, HashedPassword):
        return str(password)
    return _hasher.hash(password)


def prehash(password: str) -> HashedPassword:
    return HashedPassword(hash_password(password))


def verify_password(stored_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def generate_password() -> str:
    return secrets.token_urlsafe(15)
