"""HTTP byte ranges of stored media: one parser for the gateway and the Label Studio plugin's proxy."""

from __future__ import annotations


def parse_range(header: str | None, size: int) -> tuple[int, int] | None | bool:
    """(first, last) for one satisfiable range; None to send everything; False when unsatisfiable."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None  # absent, another unit, or several ranges: a full answer is allowed
    first_s, sep, last_s = header[6:].strip().partition("-")
    if not sep:
        return None
    try:
        if not first_s:  # suffix: the last N bytes
            n = int(last_s)
            if n <= 0:
                return False
            return max(0, size - n), size - 1
        first = int(first_s)
        last = int(last_s) if last_s else size - 1
    except ValueError:
        return None
    if first >= size:
        return False
    if first < 0 or last < first:
        return None
    return first, min(last, size - 1)
