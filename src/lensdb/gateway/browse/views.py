"""The browse page's HTML: string templates (every value escaped) and a few lines of JavaScript.

No template engine and no front-end build: the pages are small, and Jinja2 is not a dependency.
Overlays are SVG laid over each image, in the stored image's pixel coordinates (`viewBox`), so the
browser scales them with the thumbnail; strokes keep their screen width (`non-scaling-stroke`).
Human annotations are solid green, predictions dashed orange; label names are HTML tags placed
in percent of the image.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, urlencode

from lensdb.gateway.browse.queries import (
    ANNOTATED,
    Annotation,
    GridImage,
    ImagePage,
    Shape,
    label_studio_task_url,
)

HUMAN_COLOUR = "#00c853"
PREDICTION_COLOUR = "#ff6d00"
STROKE_PX = 3
THUMB_WIDTH = 240

_CSS = f"""
body {{ font: 14px system-ui, sans-serif; margin: 0; background: #fafafa; color: #222; }}
header {{ display: flex; gap: 1em; align-items: center; padding: .5em 1em; background: #263238;
  color: #fff; }}
header a {{ color: #fff; }} header .who {{ margin-left: auto; }}
main {{ padding: 1em; }}
form.filters {{ display: grid; grid-template-columns: 2fr 1fr 1fr 1fr auto; gap: .5em;
  align-items: end; margin-bottom: 1em; }}
form.filters label {{ display: flex; flex-direction: column; font-size: 12px; gap: 2px; }}
textarea {{ font: 12px monospace; height: 2.6em; }}
.grid {{ display: flex; flex-wrap: wrap; gap: 12px; }}
.card {{ background: #fff; border: 1px solid #ddd; padding: 4px; width: {THUMB_WIDTH}px; }}
.card a {{ text-decoration: none; color: inherit; }}
.frame {{ position: relative; display: inline-block; line-height: 0; }}
.frame img {{ display: block; }}
.frame svg {{ position: absolute; left: 0; top: 0; width: 100%; height: 100%;
  pointer-events: none; }}
.frame .tag {{ position: absolute; font: 11px/1.2 system-ui, sans-serif; color: #fff;
  padding: 0 3px; white-space: nowrap; transform: translateY(-100%); pointer-events: none; }}
.tag.human {{ background: {HUMAN_COLOUR}; }} .tag.prediction {{ background: {PREDICTION_COLOUR}; }}
.caption {{ font-size: 12px; padding-top: 4px; line-height: 1.3; word-break: break-all; }}
body.hide-human .human, body.hide-prediction .prediction {{ display: none; }}
.pager {{ margin: 1em 0; display: flex; gap: 1em; }}
.error {{ background: #ffebee; border: 1px solid #e57373; padding: .5em 1em; margin-bottom: 1em; }}
.legend span {{ padding: 0 4px; color: #fff; }}
table {{ border-collapse: collapse; margin: .5em 0 1.5em; }}
td, th {{ border: 1px solid #ddd; padding: 2px 8px; text-align: left; vertical-align: top; }}
.full img {{ max-width: 100%; height: auto; }}
.login {{ max-width: 420px; margin: 4em auto; background: #fff; padding: 1.5em;
  border: 1px solid #ddd; }}
.login label {{ display: block; margin: .5em 0; }} .login input {{ width: 100%; }}
"""

_JS = """
document.querySelectorAll('input[data-toggle]').forEach(function (box) {
  var cls = 'hide-' + box.dataset.toggle;
  var apply = function () { document.body.classList.toggle(cls, !box.checked); };
  box.addEventListener('change', apply); apply();
});
document.addEventListener('keydown', function (e) {
  if (e.target.closest('input, textarea, select')) return;
  var next = document.querySelector('a[rel=next]');
  if (e.key === 'n' && next) location.href = next.href;
});
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _num(v: float) -> str:
    return f"{v:.6g}"


def _page(title: str, body: str, who: str | None = None) -> str:
    user = ""
    if who is not None:
        user = (
            f'<span class="who">{_e(who)}</span>'
            '<form method="post" action="/browse/logout" style="margin:0">'
            '<button type="submit">Log out</button></form>'
        )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{_e(title)} · lensdb</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{_CSS}</style></head><body>"
        f'<header><a href="/browse"><b>lensdb</b> browse</a>{user}</header>'
        f"<main>{body}</main><script>{_JS}</script></body></html>"
    )


def login_page(error: str = "", next_url: str = "/browse", username: str = "") -> str:
    err = f'<div class="error" role="alert">{_e(error)}</div>' if error else ""
    body = f"""
<div class="login"><h2>Log in to lensdb</h2>{err}
<form method="post" action="/browse/login">
<input type="hidden" name="next" value="{_e(next_url)}">
<label>Username <input name="username" autocomplete="username" value="{_e(username)}"></label>
<label>Password <input name="password" type="password" autocomplete="current-password"></label>
<p>or</p>
<label>API token <input name="token" type="password" autocomplete="off"></label>
<button type="submit">Log in</button>
</form></div>"""
    return _page("Log in", body)


def error_page(message: str, who: str | None) -> str:
    body = f'<div class="error" role="alert">{_e(message)}</div><a href="/browse">Back</a>'
    return _page("Error", body, who)


# ---- overlays ------------------------------------------------------------------------------------


def _style(shape: Shape) -> tuple[str, str]:
    return ("human", HUMAN_COLOUR) if shape.human else ("prediction", PREDICTION_COLOUR)


def _shape_svg(shape: Shape, size: float) -> str:
    cls, colour = _style(shape)
    common = (
        f'class="shape {cls}" data-kind="{shape.kind}" data-label="{_e(shape.label)}" '
        f'data-uniqueid="{_e(shape.uniqueid)}" stroke="{colour}" '
        f'stroke-width="{STROKE_PX}" vector-effect="non-scaling-stroke"'
    )
    if not shape.human:
        common += ' stroke-dasharray="6 3"'
    if shape.kind == "box" and shape.box:
        x, y, w, h = shape.box
        return (
            f'<rect {common} fill="none" x="{_num(x)}" y="{_num(y)}" '
            f'width="{_num(w)}" height="{_num(h)}"/>'
        )
    if shape.kind == "polygon":
        pts = " ".join(f"{_num(x)},{_num(y)}" for x, y in shape.points)
        return f'<polygon {common} fill="{colour}" fill-opacity="0.15" points="{pts}"/>'
    x, y = shape.points[0]
    return (
        f'<circle {common} fill="{colour}" cx="{_num(x)}" cy="{_num(y)}" '
        f'r="{_num(max(size * 0.012, 1.5))}"/>'
    )


def _anchor(shape: Shape) -> tuple[float, float]:
    if shape.box:
        return shape.box[0], shape.box[1]
    xs = [p[0] for p in shape.points]
    ys = [p[1] for p in shape.points]
    return min(xs), min(ys)


def overlay(image: GridImage, img_tag: str) -> str:
    """The image with its shapes (SVG) and label tags over it; no shapes without a known size."""
    if not image.width or not image.height or not image.shapes:
        return f'<div class="frame">{img_tag}</div>'
    w, h = image.width, image.height
    shapes = "".join(_shape_svg(s, max(w, h)) for s in image.shapes)
    svg = (
        f'<svg viewBox="0 0 {w} {h}" preserveAspectRatio="none" '
        f'xmlns="http://www.w3.org/2000/svg">{shapes}</svg>'
    )
    tags = []
    for s in image.shapes:
        if not s.label:
            continue
        cls, _ = _style(s)
        x, y = _anchor(s)
        tags.append(
            f'<span class="tag {cls}" style="left:{100 * x / w:.4f}%;top:{100 * y / h:.4f}%">'
            f"{_e(s.label)}</span>"
        )
    return f'<div class="frame">{img_tag}{svg}{"".join(tags)}</div>'


def _thumb_size(image: GridImage) -> tuple[int, int | None]:
    if image.width and image.height:
        w = min(THUMB_WIDTH, image.width)
        return w, max(1, round(w * image.height / image.width))
    return THUMB_WIDTH, None


def _card(image: GridImage, keep: str) -> str:
    w, h = _thumb_size(image)
    size = f'width="{w}"' + (f' height="{h}"' if h else "")
    uid = quote(image.uniqueid, safe="")
    img = (
        f'<img src="/browse/thumb/{uid}?width={w}" {size} loading="lazy" '
        f'alt="image {_e(image.uniqueid)}">'
    )
    labels = sorted({s.label for s in image.shapes if s.label})
    mark = " · annotated" if image.annotated else ""
    return (
        f'<div class="card" data-uniqueid="{_e(image.uniqueid)}">'
        f'<a href="/browse/image/{uid}{keep}">{overlay(image, img)}</a>'
        f'<div class="caption"><a href="/browse/image/{uid}{keep}">{_e(image.uniqueid)}</a>'
        f"{' · ' + _e(image.dataset) if image.dataset else ''}{mark}"
        f"<br>{_e(', '.join(labels))}</div></div>"
    )


def _toggles() -> str:
    return (
        '<span class="legend">'
        f'<label><input type="checkbox" data-toggle="human" checked> '
        f'<span style="background:{HUMAN_COLOUR}">human annotations</span></label> '
        f'<label><input type="checkbox" data-toggle="prediction" checked> '
        f'<span style="background:{PREDICTION_COLOUR}">predictions</span></label></span>'
    )


def grid_page(
    who: str,
    form: dict[str, str],
    images: Iterable[GridImage],
    next_query: dict[str, str] | None,
    error: str = "",
    note: str = "",
) -> str:
    """The grid: the filter form, the thumbnails with overlays, and the pager."""
    options = "".join(
        f'<option value="{v}"{" selected" if form.get("annotated", "") == v else ""}>'
        f"{ {'': 'any', 'yes': 'annotated', 'no': 'not annotated'}[v] }</option>"
        for v in ANNOTATED
    )
    filters = f"""
<form class="filters" method="get" action="/browse">
<label>Constraints (ApertureDB JSON)
<textarea name="constraints" placeholder='{{"width": [">=", 640]}}'>{_e(form.get("constraints"))}</textarea></label>
<label>Dataset <input name="dataset" value="{_e(form.get("dataset"))}"></label>
<label>Label <input name="label" value="{_e(form.get("label"))}"></label>
<label>Annotated <select name="annotated">{options}</select></label>
<input type="hidden" name="limit" value="{_e(form.get("limit"))}">
<button type="submit">Filter</button>
</form>"""
    err = f'<div class="error" role="alert">{_e(error)}</div>' if error else ""
    shown = list(images)
    keep = "?" + urlencode({"back": _back(form)}) if form else ""
    cards = "".join(_card(i, keep) for i in shown)
    first = {k: v for k, v in form.items() if k != "after" and v}
    pager = [f'<a href="/browse?{_e(urlencode(first))}" rel="first">First page</a>']
    if next_query is not None:
        pager.append(f'<a href="/browse?{_e(urlencode(next_query))}" rel="next">Next page</a>')
    empty = "" if shown or error else "<p>No image matches.</p>"
    body = (
        f"{filters}{err}<p>{_toggles()} <span class=count>{len(shown)} images</span>"
        f"{' · ' + _e(note) if note else ''}</p>"
        f'<div class="grid">{cards}</div>{empty}<div class="pager">{"".join(pager)}</div>'
    )
    return _page("Browse", body, who)


def _back(form: dict[str, str]) -> str:
    return "/browse?" + urlencode({k: v for k, v in form.items() if v})


# ---- an image's own page ------------------------------------------------------------------------


def _value(v: Any) -> str:
    if isinstance(v, dict) and set(v) == {"_date"}:
        return _e(v["_date"])
    if isinstance(v, dict | list):
        return _e(json.dumps(v))
    return _e(v)


def _table(rows: list[tuple[str, str]], head: tuple[str, ...] = ()) -> str:
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table>{'<tr>' + th + '</tr>' if th else ''}{body}</table>"


def _annotation_rows(annotations: Iterable[Annotation], ls_url: str | None) -> list[tuple]:
    rows = []
    for a in annotations:
        link = label_studio_task_url(ls_url, a)
        task = _e(a.get("LS_task_id"))
        if link:
            task = f'<a href="{_e(link)}" class="ls-task">task {task} in Label Studio</a>'
        rows.append(
            (
                _e(a.get("LS_id")),
                _e(a.get("LS_project_title") or a.get("LS_project_id")),
                task,
                _e(a.get("LS_completed_by")),
                _value(a.get("LS_created_at")),
                _e(a.get("LS_updated_by")),
                _value(a.get("LS_updated_at")),
            )
        )
    return rows


def image_page(who: str, page: ImagePage, ls_url: str | None, back: str) -> str:
    image = page.image
    uid = quote(image.uniqueid, safe="")
    size = f'width="{image.width}" height="{image.height}"' if image.width and image.height else ""
    img = f'<img src="/browse/thumb/{uid}" {size} alt="image {_e(image.uniqueid)}" class="full-image">'
    props = _table([(_e(k), _value(v)) for k, v in sorted(page.properties.items())])
    regions = _table(
        [
            (
                _e(s.kind),
                _e(s.label),
                "human annotation" if s.human else "prediction",
                _e(s.annotation),
                _e(s.score),
                _e(s.uniqueid),
            )
            for s in image.shapes
        ],
        ("kind", "label", "source", "annotation", "score", "_uniqueid"),
    )
    annotations = _table(
        _annotation_rows(image.annotations, ls_url),
        ("annotation", "project", "task", "completed by", "created", "updated by", "updated"),
    )
    if not image.annotations:
        annotations = "<p>No human annotation.</p>"
    elif not ls_url:
        annotations += (
            "<p>Set LABEL_STUDIO_URL when starting lensdb to link annotations to their tasks.</p>"
        )
    body = (
        f'<p><a href="{_e(back)}">← back to the grid</a> {_toggles()}</p>'
        f"<h2>Image {_e(image.uniqueid)}</h2>"
        f'<div class="full">{overlay(image, img)}</div>'
        f"<h3>Properties</h3>{props}<h3>Regions ({len(image.shapes)})</h3>{regions}"
        f"<h3>Annotations</h3>{annotations}"
    )
    return _page(f"Image {image.uniqueid}", body, who)
