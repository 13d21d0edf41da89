"""`_uniqueid` strings: "<family>.0.<row id>", never "0.0.0"."""

from __future__ import annotations

import re

# The first number tells the object's family at a glance; the row id alone identifies it.
FAMILY_CODES = {
    "_Image": 2,
    "_Blob": 3,
    "_BoundingBox": 4,
    "_Polygon": 5,
    "_Descriptor": 6,
    "_DescriptorSet": 7,
}
ENTITY_CODE = 1
CONNECTION_CODE = 9
_UID = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")


def object_uid(cls: str, row_id: int) -> str:
    return f"{FAMILY_CODES.get(cls, ENTITY_CODE)}.0.{row_id}"


def connection_uid(row_id: int) -> str:
    return f"{CONNECTION_CODE}.0.{row_id}"


def parse_uniqueid(text: str) -> tuple[int, int] | None:
    """(family code, row id), or None for text that nothing can have (e.g. "0.0.0", garbage)."""
    m = _UID.match(text)
    if not m:
        return None
    code, row = int(m.group(1)), int(m.group(3))
    return (code, row) if 0 < row < 2**63 else None
