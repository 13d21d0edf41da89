"""ApertureDB's authentication and access-control commands, answered by the server.

These never reach the engine. Authenticate and RefreshToken need no session; the rest
need one, and changing other users or roles needs the `users` permissions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from lensdb.auth import credentials, permissions
from lensdb.auth.permissions import PermissionSpecError
from lensdb.auth.service import AuthService, Principal
from lensdb.auth.store import AuthError, IssuedSession
from lensdb.errors import answer, failure

NOT_AUTHENTICATED: dict = failure("Not Authenticated!")
SESSIONLESS = frozenset({"Authenticate", "RefreshToken"})
COMMANDS = frozenset(
    {
        "Authenticate",
        "RefreshToken",
        "GenerateToken",
        "CreateRole",
        "UpdateRole",
        "RemoveRole",
        "CreateUser",
        "UpdateUser",
        "RemoveUser",
        "GetUserDetails",
    }
)
# UpdateUser keys a user may use on their own account without `users.update`.
_SELF_SERVICE_KEYS = frozenset({"username", "password", "add_tokens", "remove_tokens"})


def command_names(commands: list) -> list[str] | None:
    """The command names of a well-formed query, or None if it is not one."""
    names = []
    for c in commands:
        if not isinstance(c, dict) or len(c) != 1:
            return None
        (name,) = c
        names.append(name)
    return names


def needs_session(names: list[str]) -> bool:
    return any(n not in SESSIONLESS for n in names)


def run(
    service: AuthService,
    commands: list[dict],
    names: list[str],
    principal: Principal | None,
    address: str | None = None,
) -> list | dict:
    """Answer a query made only of access-control commands, as one transaction.

    `address` is the client's network address, which failed logins are counted against.
    """
    if len(names) == 1 and names[0] in SESSIONLESS:
        (params,) = commands[0].values()
        try:
            issued = _sessionless(service, names[0], params, address)
        except AuthError as e:
            return [{names[0]: failure(str(e))}]
        return [{names[0]: _session_answer(issued)}]
    if any(n in SESSIONLESS for n in names):
        return failure("Authenticate and RefreshToken must be sent alone")
    out = []
    # Hash new passwords before the store's lock is taken: argon2 is slow by design and
    # every query's session check waits on that lock.
    prepared = [_prehashed(name, cmd[name]) for name, cmd in zip(names, commands, strict=True)]
    try:
        with service.store.transaction():
            for i, (name, params) in enumerate(zip(names, prepared, strict=True)):
                if not isinstance(params, dict):
                    raise AuthError(f"parameters of {name} must be an object")
                assert principal is not None
                try:
                    out.append({name: _HANDLERS[name](service, principal, params)})
                except AuthError as e:
                    raise AuthError(f"{name} (command {i}): {e}") from e
    except (AuthError, PermissionSpecError) as e:
        return failure(str(e))
    return out


def _prehashed(name: str, params: Any) -> Any:
    password = params.get("password") if isinstance(params, dict) else None
    if name in ("CreateUser", "UpdateUser") and isinstance(password, str) and password:
        return {**params, "password": credentials.prehash(params["password"])}
    return params


def _session_answer(issued: IssuedSession) -> dict:
    return answer(
        session_token=issued.session_token,
        session_token_expires_in=issued.session_ttl,
        refresh_token=issued.refresh_token,
        refresh_token_expires_in=issued.refresh_ttl,
    )


def _sessionless(
    service: AuthService, name: str, params: Any, address: str | None
) -> IssuedSession:
    if not isinstance(params, dict):
        raise AuthError(f"parameters of {name} must be an object")
    if name == "RefreshToken":
        return service.refresh(params.get("refresh_token", ""))
    if params.get("password"):
        return service.login_password(params.get("username", ""), params["password"], address)
    if params.get("token"):
        return service.login_token(params["token"], params.get("username") or None, address)
    raise AuthError("Authenticate needs a username and password, or a token")


def _require(principal: Principal, action: str) -> None:
    if not principal.allows(permissions.USERS, action):
        raise AuthError(
            f"Permission denied: user '{principal.username}' may not {action} users or roles"
        )


def _role_spec(params: Mapping) -> permissions.Permissions:
    spec = {k: v for k, v in params.items() if k != "name"}
    return permissions.validate(spec)


def _generate_token(service: AuthService, principal: Principal, params: dict) -> dict:
    return answer(token=credentials.new_token(credentials.API_PREFIX))


def _get_user_details(service: AuthService, principal: Principal, params: dict) -> dict:
    username = params.get("username") or principal.username
    if username != principal.username:
        _require(principal, "read")
    user = service.store.user(username)
    if user is None:
        raise AuthError(f"user '{username}' does not exist")
    return answer(
        username=user.username,
        email=user.email,
        roles=list(user.roles),
        tokens=[t.shown for t in service.store.tokens_of(user.id)],
    )


def _create_role(service: AuthService, principal: Principal, params: dict) -> dict:
    _require(principal, "create")
    service.store.create_role(params.get("name", ""), _role_spec(params))
    return answer()


def _update_role(service: AuthService, principal: Principal, params: dict) -> dict:
    _require(principal, "update")
    service.store.update_role(params.get("name", ""), _role_spec(params))
    return answer()


def _remove_role(service: AuthService, principal: Principal, params: dict) -> dict:
    _require(principal, "delete")
    service.store.remove_role(params.get("name", ""))
    return answer()


def _create_user(service: AuthService, principal: Principal, params: dict) -> dict:
    _require(principal, "create")
    roles = params.get("roles", [])
    if not isinstance(roles, list):
        raise AuthError("roles must be a list of role names")
    service.store.create_user(
        params.get("username", ""), params.get("password"), roles, params.get("email")
    )
    return answer()


def _update_user(service: AuthService, principal: Principal, params: dict) -> dict:
    username = params.get("username") or principal.username
    if username != principal.username or not set(params) <= _SELF_SERVICE_KEYS:
        _require(principal, "update")
    elif principal.read_only:
        raise AuthError(
            f"Permission denied: user '{principal.username}' has a read-only role and may not "
            "change their own password or tokens; an administrator can"
        )
    roles = params.get("roles")
    if roles is not None and not isinstance(roles, list):
        raise AuthError("roles must be a list of role names")
    for key in ("add_tokens", "remove_tokens"):
        if not isinstance(params.get(key, []), list):
            raise AuthError(f"{key} must be a list of tokens")
    password = params.get("password")
    if password is not None and (not isinstance(password, str) or not password):
        raise AuthError("password must be a non-empty string")
    service.store.update_user(username, password=password, email=params.get("email"), roles=roles)
    for token in params.get("add_tokens", []):
        service.store.add_token(username, token)
    if params.get("remove_tokens"):
        service.store.remove_tokens(username, params["remove_tokens"])
    return answer()


def _remove_user(service: AuthService, principal: Principal, params: dict) -> dict:
    _require(principal, "delete")
    service.store.remove_user(params.get("username", ""))
    return answer()


_HANDLERS: dict[str, Callable[[AuthService, Principal, dict], dict]] = {
    "GenerateToken": _generate_token,
    "GetUserDetails": _get_user_details,
    "CreateRole": _create_role,
    "UpdateRole": _update_role,
    "RemoveRole": _remove_role,
    "CreateUser": _create_user,
    "UpdateUser": _update_user,
    "RemoveUser": _remove_user,
}
