"""`constraints` → the backend's predicate tree, with the query language's rules.

Two spellings arrive: the classic object `{"age": [">=", 20], "any": {...}}`, and the
expression array that aperturedb SDK 0.5 sends, `["all", ["$age", ">=", 20], ["$name", "==", "x"]]`
with literals `{"to_date": ...}`, `{"array": [...]}` and `"$$..."` for a string starting with `$`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lensdb.engine.ids import CONNECTION_CODE, ENTITY_CODE, FAMILY_CODES, parse_uniqueid
from lensdb.engine.values import DATE_KEY, check_key_name, parse_date
from lensdb.errors import QueryError
from lensdb.store.base import (
    AllOf,
    AnyOf,
    ClassIn,
    Compare,
    DateValue,
    IdCompare,
    IdIn,
    Not,
    OneOf,
    Predicate,
    Scalar,
)

COMPARISONS = {"==", "!=", "<", "<=", ">", ">="}
LOWER = {">", ">="}
UPPER = {"<", "<="}


@dataclass(frozen=True)
class _Uids:
    """`_uniqueid` (family code, row id) pairs, until it is known whether they name objects
    or connections (see `_resolve`)."""

    pairs: tuple[tuple[int, int], ...]
    negate: bool = False


@dataclass(frozen=True)
class _UidOrder:
    """`_uniqueid` compared with <, <=, > or >=: within one family, uniqueids are ordered by row
    id (insertion order), so a page can start after the last uniqueid seen (keyset paging)."""

    op: str
    pair: tuple[int, int]


def parse_constraints(
    obj: object, *, what: str = "constraints", connections: bool = False
) -> Predicate | None:
    """None when there is nothing to constrain. `connections`: the constraints select
    connections, not objects (that changes only what a `_uniqueid` can match)."""
    pred = _parse(obj, what)
    return None if pred is None else _resolve(pred, connections)


def _parse(obj: object, what: str) -> Predicate | None:
    if obj is None:
        return None
    if isinstance(obj, list):
        return _expression(obj, what)
    if not isinstance(obj, dict):
        raise QueryError(f"'{what}' must be an object of property: [operator, value]")
    parts: list[Predicate] = []
    for key, pred in obj.items():
        if key in ("any", "all") and isinstance(pred, dict):
            inner = [p for p in (_parse({k: v}, what) for k, v in pred.items()) if p]
            parts.append(AnyOf(tuple(inner)) if key == "any" else AllOf(tuple(inner)))
        else:
            parts.append(_property(key, pred))
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else AllOf(tuple(parts))


def _property(key: str, pred: object) -> Predicate:
    if not isinstance(pred, list):
        raise QueryError(f"Constraint for property '{key}' must be an array")
    if len(pred) == 2:
        return _single(key, pred[0], pred[1])
    if len(pred) == 4:
        op1, a, op2, b = pred
        if op1 not in LOWER and op1 not in UPPER or op2 not in LOWER and op2 not in UPPER:
            raise QueryError(
                f"Constraint for property '{key}': a range is [op1, a, op2, b] with "
                "operators among <, <=, >, >="
            )
        return AllOf((_single(key, op1, a), _single(key, op2, b)))
    raise QueryError(f"Constraint for property '{key}' must be an array of size 2 or 4")


def _single(key: str, op: object, value: object) -> Predicate:
    check_key_name(key, "constraints")
    if op in ("in", "not in"):
        if not isinstance(value, list):
            raise QueryError(f"Constraint for property '{key}': '{op}' takes a list of values")
        if key == "_uniqueid":
            return _Uids(
                tuple(i for i in (_uid(key, v) for v in value) if i is not None),
                negate=op == "not in",
            )  # type: ignore[return-value]
        return OneOf(key, tuple(_scalar(key, v) for v in value), negate=op == "not in")
    if not isinstance(op, str) or op not in COMPARISONS:  # (a list or object is unhashable)
        raise QueryError(
            f"Constraint for property '{key}': unknown operator {op!r} "
            "(use ==, !=, <, <=, >, >=, in, not in)"
        )
    if key == "_uniqueid":
        uid = _uid(key, value)
        if op not in ("==", "!="):
            if uid is None:
                raise QueryError(
                    f"Constraint for property '_uniqueid': {op} needs a uniqueid like "
                    f'"2.0.17" (got {value!r})'
                )
            return _UidOrder(str(op), uid)  # type: ignore[return-value]
        return _Uids(() if uid is None else (uid,), negate=op == "!=")  # type: ignore[return-value]
    v = _scalar(key, value)
    if v is None and op not in ("==", "!="):
        raise QueryError(f"Constraint for property '{key}': null can only be used with == and !=")
    if isinstance(v, bool) and op not in ("==", "!="):
        raise QueryError(
            f"Constraint for property '{key}': booleans can only be used with == and !="
        )
    return Compare(key, str(op), v)


def _resolve(pred: Predicate, connections: bool) -> Predicate:
    """Turn `_Uids` into id (and, for objects, class) predicates: "2.0.5" is image row 5, so
    it matches neither entity row 5 nor connection 5."""
    if isinstance(pred, AllOf | AnyOf):
        return type(pred)(tuple(_resolve(p, connections) for p in pred.parts))
    if isinstance(pred, _UidOrder):
        code, row = pred.pair
        order = IdCompare(pred.op, row)
        if connections:
            return order if code == CONNECTION_CODE else IdIn(())
        if code != ENTITY_CODE and code not in _SYSTEM_CLASS:
            return IdIn(())
        return AllOf((order, _family(code)))
    if not isinstance(pred, _Uids):
        return pred
    if connections:
        return IdIn(tuple(r for c, r in pred.pairs if c == CONNECTION_CODE), pred.negate)
    groups: dict[int, list[int]] = {}
    for code, row in pred.pairs:
        if code == ENTITY_CODE or code in _SYSTEM_CLASS:
            groups.setdefault(code, []).append(row)
    if not groups:
        return IdIn((), pred.negate)
    parts = tuple(AllOf((IdIn(tuple(rows)), _family(code))) for code, rows in groups.items())
    match = parts[0] if len(parts) == 1 else AnyOf(parts)
    return Not(match) if pred.negate else match


_SYSTEM_CLASS = {code: cls for cls, code in FAMILY_CODES.items()}


def _family(code: int) -> ClassIn:
    if code == ENTITY_CODE:
        return ClassIn(tuple(FAMILY_CODES), negate=True)  # any user entity class
    return ClassIn((_SYSTEM_CLASS[code],))


def _uid(key: str, value: Any) -> tuple[int, int] | None:
    if not isinstance(value, str):
        raise QueryError(
            f"Constraint for property '{key}': a _uniqueid is a string like \"2.0.17\""
        )
    return parse_uniqueid(value)


def _scalar(key: str, value: Any) -> Scalar:
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
        return float(value)  # beyond 64 bits a number is stored, and compared, as a double
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dict) and set(value) == {DATE_KEY}:
        return DateValue(parse_date(value[DATE_KEY]))
    raise QueryError(f"Constraint for property '{key}': unsupported value {value!r}")


def _expression(expr: list, what: str) -> Predicate:
    if not expr:
        raise QueryError(f"'{what}': an empty expression array")
    head = expr[0]
    if head in ("all", "any"):
        parts = tuple(
            _expression(e, what) if isinstance(e, list) else _bad(e, what) for e in expr[1:]
        )
        return AllOf(parts) if head == "all" else AnyOf(parts)
    if isinstance(head, str) and head.startswith("$") and not head.startswith("$$"):
        if len(expr) != 3:
            raise QueryError(
                f"'{what}': a comparison is [\"$property\", operator, value], got {expr!r}"
            )
        key, op, value = head[1:], expr[1], _literal(expr[2], head[1:])
        if not key:
            raise QueryError(f"'{what}': a property reference needs a name after '$'")
        return _single(key, op, value)
    return _bad(expr, what)


def _bad(expr: object, what: str) -> Predicate:
    raise QueryError(
        f'\'{what}\': cannot read expression {expr!r}; use ["all"|"any", ...] or '
        '["$property", operator, value]'
    )


def _literal(value: Any, key: str) -> Any:
    if isinstance(value, str):
        if value.startswith("$$"):
            return value[1:]
        if value.startswith("$"):
            raise QueryError(
                f"Constraint for property '{key}': comparing with another property "
                f"({value}) is not supported"
            )
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((name, inner),) = value.items()
        if name == "to_date":
            return {DATE_KEY: inner}
        if name == "array" and isinstance(inner, list):
            return [_literal(v, key) for v in inner]
        if name == "json":
            return inner
    return value
