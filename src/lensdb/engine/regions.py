"""Geometry of regions on images: stored system properties of boxes and polygons.

Both kinds store their bounding rectangle as `_x, _y, _width, _height` plus the far corner
`_x2, _y2`, so `in_rectangle` is an ordinary predicate the backend can answer.
"""

from __future__ import annotations

from typing import Any

from lensdb.errors import QueryError
from lensdb.store.base import AllOf, Compare, Predicate


def _number(name: str, v: object, *, positive: bool = False, member: str = "") -> float:
    """`v` if it is a number (> 0 if `positive`); else an error naming `name` + `member`."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise QueryError(f"'{name}{member}' must be a number")
    if positive and v <= 0:
        raise QueryError(f"'{name}{member}' must be greater than 0")
    return v


_PLAIN_NUMBERS = frozenset({int, float})
_RECTANGLE_KEYS = frozenset({"x", "y", "width", "height", "w", "h"})


def rectangle(obj: object, name: str = "rectangle") -> dict[str, float]:
    """Accepts {x, y, width, height} and VDMS's {x, y, w, h}."""
    if not isinstance(obj, dict):
        raise QueryError(f"'{name}' must be an object {{x, y, width, height}}")
    width = obj.get("width", obj.get("w"))
    height = obj.get("height", obj.get("h"))
    if not _RECTANGLE_KEYS.issuperset(obj):
        unknown = sorted(set(obj) - _RECTANGLE_KEYS)
        raise QueryError(f"unknown key(s) in '{name}': {', '.join(map(str, unknown))}")
    return {
        "x": _number(name, obj.get("x"), member=".x"),
        "y": _number(name, obj.get("y"), member=".y"),
        "width": _number(name, width, positive=True, member=".width"),
        "height": _number(name, height, positive=True, member=".height"),
    }


def box_props(rect: dict[str, float]) -> dict[str, Any]:
    x, y, w, h = rect["x"], rect["y"], rect["width"], rect["height"]
    return {"_x": x, "_y": y, "_width": w, "_height": h, "_x2": x + w, "_y2": y + h, "_area": w * h}


def polygons(obj: object) -> list[list[list[float]]]:
    """A list of regions, each a list of at least three [x, y] points."""
    if not isinstance(obj, list) or not obj:
        raise QueryError("'polygons' must be a non-empty list of regions, each a list of [x, y]")
    out = []
    for i, region in enumerate(obj):
        if not isinstance(region, list) or len(region) < 3:
            raise QueryError(f"'polygons[{i}]' must list at least 3 [x, y] points")
        pts = []
        for j, pt in enumerate(region):
            if not isinstance(pt, list | tuple) or len(pt) != 2:
                raise QueryError(f"'polygons[{i}][{j}]' must be a point [x, y]")
            x, y = pt
            if type(x) not in _PLAIN_NUMBERS or type(y) not in _PLAIN_NUMBERS:
                # (the error's name is built only here: a COCO polygon has dozens of points)
                x, y = _number(f"polygons[{i}][{j}]", x), _number(f"polygons[{i}][{j}]", y)
            pts.append([x, y])
        out.append(pts)
    return out


def polygon_props(regions: list[list[list[float]]]) -> dict[str, Any]:
    xs = [p[0] for r in regions for p in r]
    ys = [p[1] for r in regions for p in r]
    x, y = min(xs), min(ys)
    w, h = max(xs) - x, max(ys) - y
    area = 0.0
    for r in regions:  # shoelace formula; regions are disjoint, so areas add up
        area += abs(sum(r[k][0] * r[k - 1][1] - r[k - 1][0] * r[k][1] for k in range(len(r)))) / 2
    return {
        "_vertices": regions,
        "_bounds": {"x": x, "y": y, "width": w, "height": h},
        "_x": x,
        "_y": y,
        "_width": w,
        "_height": h,
        "_x2": x + w,
        "_y2": y + h,
        "_area": area,
    }


def label(v: object) -> str:
    if not isinstance(v, str):
        raise QueryError("'label' must be a string")
    return v


def in_rectangle(obj: object) -> Predicate:
    r = rectangle(obj, "in_rectangle")
    return AllOf(
        (
            Compare("_x", ">=", r["x"]),
            Compare("_y", ">=", r["y"]),
            Compare("_x2", "<=", r["x"] + r["width"]),
            Compare("_y2", "<=", r["y"] + r["height"]),
        )
    )


def crop_box(props: dict[str, Any]) -> tuple[int, int, int, int]:
    """The pixel rectangle to cut from the image for a region's blob."""
    x, y = int(props["_x"]), int(props["_y"])
    return x, y, max(1, round(props["_width"])), max(1, round(props["_height"]))
