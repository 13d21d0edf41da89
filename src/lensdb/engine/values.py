"""Property values: validation on the way in, and the stored shape of dates.

Dates arrive as `{"_date": "<text>"}`. They are stored as `{"_date": text, "_ts": epoch seconds}`
so that backends compare them chronologically through the `_ts` member, and they go back
out as `{"_date": text}`.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta, timezone
from math import isfinite
from typing import Any

from lensdb.errors import QueryError

DATE_KEY = "_date"
TS_KEY = "_ts"

# Timezone abbreviations seen in ApertureDB's documentation examples ("Mon Aug 7 10:59:24 PDT 2017").
_TZ_ABBREV = {
    "UTC": 0,
    "GMT": 0,
    "Z": 0,
    "EST": -5,
    "EDT": -4,
    "CST": -6,
    "CDT": -5,
    "MST": -7,
    "MDT": -6,
    "PST": -8,
    "PDT": -7,
    "CET": 1,
    "CEST": 2,
    "BST": 1,
    "IST": 5.5,
    "JST": 9,
}
_CTIME_TZ = re.compile(r"^\w{3} (\w{3}) +(\d{1,2}) (\d{1,2}):(\d{2}):(\d{2}) ([A-Za-z]+) (\d{4})$")
_MONTHS = {
    m: i + 1
    for i, m in enumerate(
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    )
}


def parse_date(text: object) -> float:
    """Epoch seconds for an ISO 8601 or ctime-with-zone date string; naive times count as UTC."""
    if not isinstance(text, str):
        raise QueryError(f"_date value must be a string, got {text!r}")
    s = text.strip()
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        dt = _parse_ctime(s)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def _parse_ctime(s: str) -> datetime:
    m = _CTIME_TZ.match(s)
    if not m or m.group(1) not in _MONTHS or m.group(6).upper() not in _TZ_ABBREV:
        raise QueryError(
            f"cannot parse date {s!r}: use ISO 8601 (2024-05-01T12:00:00+02:00) "
            "or 'Mon Aug 7 10:59:24 PDT 2017'"
        )
    mon, day, hh, mm, ss, tz, year = m.groups()
    offset = timezone(timedelta(hours=_TZ_ABBREV[tz.upper()]))
    return datetime(int(year), _MONTHS[mon], int(day), int(hh), int(mm), int(ss), tzinfo=offset)


def encode_value(key: str, value: Any) -> Any:
    """The stored form of one property value; raises QueryError for what cannot be stored."""
    if isinstance(value, bool) or isinstance(value, str) or isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise QueryError(f"property '{key}': {value} is not a finite number")
        return value
    if isinstance(value, dict):
        if DATE_KEY in value:
            if len(value) != 1:
                raise QueryError(f'property \'{key}\': a date is written {{"_date": "..."}} alone')
            return {DATE_KEY: value[DATE_KEY], TS_KEY: parse_date(value[DATE_KEY])}
        return value  # a JSON document
    if isinstance(value, list):
        return value
    raise QueryError(
        f"property '{key}': unsupported value {value!r} (use a number, string, "
        'boolean, {"_date": ...} or JSON)'
    )


# Property names already found valid. Queries repeat a few names many times (a COCO import
# sends 476,000 names, 20 distinct ones), so each is checked once; with the exact types that
# are stored as they are tested inline, validating properties took 0.59 s instead of 1.25 s
# of that import's profile. Bounded, as names come from clients.
_VALID_KEYS: set[str] = set()
_MAX_VALID_KEYS = 4096


def encode_properties(props: object, *, what: str = "properties") -> dict[str, Any]:
    """Validate a `properties` object and return its stored form."""
    if props is None:
        return {}
    if not isinstance(props, dict):
        raise QueryError(f"'{what}' must be an object of key: value")
    out: dict[str, Any] = {}
    valid = _VALID_KEYS
    for key, value in props.items():
        if key not in valid:
            check_user_key(key)
            if type(key) is str and len(valid) < _MAX_VALID_KEYS:
                valid.add(key)
        if value is None:
            continue  # null means absent
        kind = type(value)
        plain = kind is str or kind is int or kind is bool or (kind is float and isfinite(value))
        out[key] = value if plain else encode_value(key, value)
    return out


def check_user_key(key: object) -> str:
    if not isinstance(key, str) or not key:
        raise QueryError(f"property names must be non-empty strings, got {key!r}")
    if key.startswith("_"):
        raise QueryError(f"property '{key}': names starting with '_' are reserved for the system")
    if '"' in key or "\\" in key:
        raise QueryError(f"property '{key}': names may not contain quotes or backslashes")
    return key


def check_key_name(key: object, what: str) -> str:
    """A name to look properties up by (system names included), spelled as storable names are."""
    if not isinstance(key, str) or not key or '"' in key or "\\" in key:
        raise QueryError(
            f"{what}: '{key}' cannot name a property (names are non-empty strings "
            "without quotes or backslashes)"
        )
    return key


def decode_value(value: Any) -> Any:
    """The client-facing form of a stored value."""
    if isinstance(value, dict) and DATE_KEY in value:
        return {DATE_KEY: value[DATE_KEY]}
    return value
