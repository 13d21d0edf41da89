"""Roles grant read/create/update/delete per object kind; commands need one of them.

A role is a JSON object `{kind: {action: bool}}`. The kind `objects` is the default for
every kind of database object; a specific kind (`images`, `entities`, ...) overrides it
only for the actions it names. The kind `users` governs the access-control commands and
does not fall back to `objects`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from lensdb.errors import LensdbError

ACTIONS = ("read", "create", "update", "delete")
OBJECTS = "objects"
USERS = "users"

# Command-name noun → object kind. Unlisted nouns fall under `objects`.
_NOUN_KINDS = {
    "Entity": "entities",
    "Connection": "connections",
    "Image": "images",
    "Video": "videos",
    "Frame": "frames",
    "Clip": "clips",
    "Blob": "blobs",
    "BoundingBox": "bounding_boxes",
    "Polygon": "polygons",
    "Descriptor": "descriptors",
    "DescriptorSet": "descriptor_sets",
    "Index": "indexes",
    "Schema": OBJECTS,
}
KINDS = (OBJECTS, USERS, *sorted(set(_NOUN_KINDS.values()) - {OBJECTS}))

_VERB_ACTIONS = {
    "Find": "read",
    "Get": "read",
    "Classify": "read",
    "Add": "create",
    "Create": "create",
    "Update": "update",
    "Delete": "delete",
    "Remove": "delete",
}
_VERB_RE = re.compile(r"^(Find|Get|Classify|Add|Create|Update|Delete|Remove)([A-Z]\w*)$")

# Commands any authenticated session may run.
_FREE_COMMANDS = frozenset({"GetStatus", "UserLogMessage"})

Permissions = dict[str, dict[str, bool]]

ALL_PERMISSIONS: Permissions = {kind: dict.fromkeys(ACTIONS, True) for kind in (OBJECTS, USERS)}


class PermissionSpecError(LensdbError, ValueError):
    """A role's permission object is not of the expected shape."""


def required(command: str) -> tuple[str, str] | None:
    """The (kind, action) a data command needs, or None when it needs nothing.

    Commands that fit no known verb are treated as updates of `objects`, so that a
    command this table does not know can never slip past a read-only role.
    """
    if command in _FREE_COMMANDS:
        return None
    m = _VERB_RE.match(command)
    if not m:
        return OBJECTS, "update"
    verb, noun = m.groups()
    return _NOUN_KINDS.get(noun, OBJECTS), _VERB_ACTIONS[verb]


def validate(spec: Mapping) -> Permissions:
    """Check a role's permission object (as sent in CreateRole/UpdateRole) and copy it."""
    out: Permissions = {}
    for kind, actions in spec.items():
        if kind not in KINDS:
            raise PermissionSpecError(f"unknown object kind '{kind}' (known: {', '.join(KINDS)})")
        if not isinstance(actions, Mapping):
            raise PermissionSpecError(f"permissions for '{kind}' must be an object of booleans")
        for action, allowed in actions.items():
            if action not in ACTIONS:
                raise PermissionSpecError(
                    f"unknown action '{action}' for '{kind}' (known: {', '.join(ACTIONS)})"
                )
            if not isinstance(allowed, bool):
                raise PermissionSpecError(f"'{kind}.{action}' must be true or false")
        out[kind] = dict(actions)
    return out


def merge(base: Permissions, update: Permissions) -> Permissions:
    """UpdateRole semantics: actions named in `update` replace those in `base`."""
    out = {kind: dict(actions) for kind, actions in base.items()}
    for kind, actions in update.items():
        out.setdefault(kind, {}).update(actions)
    return out


def allows(roles: Iterable[Permissions], kind: str, action: str) -> bool:
    """True when any of the roles grants `action` on `kind`."""
    for perms in roles:
        specific = perms.get(kind, {})
        if action in specific:
            if specific[action]:
                return True
            continue
        if kind != USERS and perms.get(OBJECTS, {}).get(action, False):
            return True
    return False


def may_change(roles: Iterable[Permissions]) -> bool:
    """True when any role grants create, update or delete on any kind."""
    return any(
        allowed
        for perms in roles
        for kind, actions in perms.items()
        for action, allowed in actions.items()
        if action != "read"
    )
