"""Users, roles, API tokens and sessions for `lensdb serve`."""

from lensdb.auth.service import AuthService, Principal
from lensdb.auth.store import AuthError, AuthStore

__all__ = ["AuthError", "AuthService", "AuthStore", "Principal"]
