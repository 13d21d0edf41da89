"""The state of one query while it runs: its transaction, refs, and blobs in and out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lensdb.errors import QueryError, Status
from lensdb.store.base import Store, Txn

MAX_REF = 10**9
MAX_LIMIT = 2**62


@dataclass(slots=True)
class RefSet:
    """What a `_ref` names: objects (with their classes) or connections, in result order."""

    kind: str  # "object" or "connection"
    ids: list[int]
    classes: list[str]


# Commands whose data comes as an input blob, unless they name a `url` instead.
_ADDS_WITH_BLOB = frozenset({"AddImage", "AddBlob", "AddVideo"})


def takes_blob(name: str, body: object) -> bool:
    """Whether command `name` consumes the next input blob: the one rule, used to check the
    blob count, to stage the blobs and when the command runs."""
    if not isinstance(body, dict):
        return False
    if name in _ADDS_WITH_BLOB:
        return "url" not in body
    return name in ("AddDescriptor", "ClassifyDescriptor") or (
        name == "FindDescriptor" and "k_neighbors" in body
    )


@dataclass(slots=True)
class BlobInput:
    """An input blob, prepared and written before the transaction: its stored key, what was
    learnt reading it (an image's size), or why it cannot be stored."""

    data: bytes | None
    info: Any = None
    error: str | None = None
    key: str | None = None


@dataclass
class Context:
    store: Store
    txn: Txn
    inputs: list[BlobInput]
    max_response_bytes: int
    refs: dict[int, RefSet] = field(default_factory=dict)
    blobs_out: list[bytes] = field(default_factory=list)
    used_keys: set[str] = field(default_factory=set)
    blob_pos: int = 0
    out_bytes: int = 0
    # Per-family state of this query (descriptors: sets looked up, vector changes to apply
    # after the commit) and the database's services it needs (the vector indexes).
    extra: dict[str, Any] = field(default_factory=dict)

    def next_blob(self) -> BlobInput:
        # Counts were checked before the transaction started.
        blob = self.inputs[self.blob_pos]
        self.blob_pos += 1
        return blob

    def keep_blob(self, blob: BlobInput) -> str:
        """The staged key of an input blob that a row now references."""
        if blob.error is not None:
            raise QueryError(blob.error)
        assert blob.key is not None
        self.used_keys.add(blob.key)
        return blob.key

    def emit_blob(self, data: bytes) -> int:
        self.out_bytes += len(data)
        if self.out_bytes > self.max_response_bytes:
            raise QueryError(
                f"the blobs asked for exceed the response limit of {self.max_response_bytes} "
                "bytes: ask for fewer (limit, batch) or smaller (operations) blobs",
                status=Status.RESPONSE_TOO_LARGE,
            )
        self.blobs_out.append(data)
        return len(self.blobs_out) - 1

    def bind(self, body: dict, refset: RefSet) -> None:
        ref = body.get("_ref")
        if ref is None:
            return
        if isinstance(ref, bool) or not isinstance(ref, int) or not 1 <= ref <= MAX_REF:
            raise QueryError(f"'_ref' must be an integer from 1 to {MAX_REF}, got {ref!r}")
        if ref in self.refs:
            raise QueryError(
                f"_ref {ref} is already used by an earlier command (reuse of _ref value)"
            )
        self.refs[ref] = refset

    def ref(self, value: object, *, param: str = "ref", kind: str | None = "object") -> RefSet:
        if not isinstance(value, int) or isinstance(value, bool):
            raise QueryError(f"'{param}' must be an integer reference to an earlier _ref")
        found = self.refs.get(value)
        if found is None:
            raise QueryError(
                f"reference {value} not defined (in '{param}'): set \"_ref\": {value} "
                "on an earlier command of the same query"
            )
        if kind is not None and found.kind != kind:
            raise QueryError(f"reference {value} (in '{param}') names {found.kind}s, not {kind}s")
        return found


class Params:
    """Typed access to a command's parameters; unknown parameters are an error."""

    def __init__(self, body: object, allowed: frozenset[str]) -> None:
        if not isinstance(body, dict):
            raise QueryError("parameters must be a JSON object")
        if not allowed.issuperset(body):
            unknown = sorted(k for k in body if k not in allowed)
            raise QueryError(
                f"unknown parameter(s) {', '.join(map(repr, unknown))}; "
                f"accepted: {', '.join(sorted(allowed))}"
            )
        self.body: dict[str, Any] = body

    def __contains__(self, key: str) -> bool:
        return key in self.body

    def get(self, key: str, default: Any = None) -> Any:
        return self.body.get(key, default)

    def str(self, key: str, default: str | None = None, *, required: bool = False) -> str | None:
        v = self.body.get(key, default)
        if v is None:
            if required:
                raise QueryError(f"'{key}' is required")
            return None
        if not isinstance(v, str):
            raise QueryError(f"'{key}' must be a string")
        return v

    def bool(self, key: str, default: bool = False) -> bool:
        v = self.body.get(key, default)
        if v is None:
            return default
        if not isinstance(v, bool):
            raise QueryError(f"'{key}' must be true or false")
        return v

    def int(self, key: str, default: int | None = None, *, minimum: int = 0) -> int | None:
        v = self.body.get(key, default)
        return None if v is None else as_int(key, v, minimum)

    def dict(self, key: str) -> dict | None:
        v = self.body.get(key)
        if v is not None and not isinstance(v, dict):
            raise QueryError(f"'{key}' must be an object")
        return v


def as_int(key: str, v: object, minimum: int = 0) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise QueryError(f"'{key}' must be an integer")
    if v < minimum:
        raise QueryError(f"'{key}' must be at least {minimum}")
    return min(v, MAX_LIMIT)
