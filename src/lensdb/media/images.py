"""Image probing, ApertureDB `operations` and re-encoding, built on Pillow.

Pixel sizes are always the stored (raw) ones: EXIF orientation is not applied, so
coordinates from clients (crops, bounding boxes) address the pixels as stored.
"""

from __future__ import annotations

import importlib
import math
import re
from dataclasses import dataclass
from io import BytesIO

from PIL import Image

from lensdb.errors import LensdbError


def _load_decoders() -> list[str]:
    """Pillow formats allowed to parse client data.

    Pillow's other plugins are rarely useful here and some (EPS) run external programs.
    Each plugin is imported by hand because Image.init() loads all ~40 of them (50 ms).
    Multi-picture JPEGs come back from the JPEG decoder with format "MPO".
    """
    plugins = {
        "JPEG": "JpegImagePlugin",
        "PNG": "PngImagePlugin",
        "TIFF": "TiffImagePlugin",
        "WEBP": "WebPImagePlugin",
        "GIF": "GifImagePlugin",
        "BMP": "BmpImagePlugin",
        "AVIF": "AvifImagePlugin",  # Pillow >= 11.2 only
    }
    found = []
    for name, module in plugins.items():
        try:
            importlib.import_module(f"PIL.{module}")
        except ImportError:
            continue
        if name in Image.OPEN:
            found.append(name)
    return found


_DECODERS = _load_decoders()

# Pillow format name -> the short lower-case name clients see.
_FORMAT_NAMES = {"JPEG": "jpg", "MPO": "jpg"}

_ENCODERS = {"jpg": "JPEG", "png": "PNG"}
_JPEG_QUALITY = 90

# Modes that operations and encoders handle directly; the rest are converted first.
_CONVERT = {
    "1": "L",
    "La": "LA",
    "PA": "RGBA",
    "RGBa": "RGBA",
    "RGBX": "RGB",
    "CMYK": "RGB",
    "YCbCr": "RGB",
    "HSV": "RGB",
    "LAB": "RGB",
}

# Key each operation type accepts, besides "type".
_OP_KEYS = {
    "resize": {"width", "height"},
    "crop": {"x", "y", "width", "height"},
    "rotate": {"angle", "resize"},
    "flip": {"code"},
    "threshold": {"value"},
}

_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError)


class MediaError(LensdbError, ValueError):
    """Bad image data or a bad operation; the message is shown to the client as is."""


@dataclass(frozen=True)
class ImageInfo:
    """Stored pixel size and short lower-case format name ("jpg", "png", "tiff", ...)."""

    width: int
    height: int
    format: str


def encode_format(name: str | None) -> str | None:
    """Normalize a requested output format ("jpeg" -> "jpg"); None stays None."""
    if name is None:
        return None
    key = str(name).strip().lower()
    key = "jpg" if key == "jpeg" else key
    if key not in _ENCODERS:
        raise MediaError(f"unsupported output format {name!r} (use 'jpg' or 'png')")
    return key


def probe(data: bytes) -> ImageInfo:
    """Read size and format from the header only; no pixel data is decoded."""
    img = _open(data)
    width, height = img.size
    if width <= 0 or height <= 0:
        raise MediaError("image data has an empty size")
    return ImageInfo(width, height, _format_name(img))


# JPEG start-of-frame markers (they hold the size): C0-CF except DHT (C4), JPG (C8), DAC (CC).
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def probe_header(head: bytes) -> ImageInfo | None:
    """Size and format of a JPEG or PNG read from the first bytes of its file, without Pillow;
    None for any other format, or when `head` ends before the size (then use `probe`).

    For callers that need an image's size before sending it to lensdb, which checks the whole
    image anyway (AddImage's `probe_complete`): Pillow's header parse of a small JPEG
    (quantisation tables, Huffman tables) cost 0.2 s per 5,000 images of a COCO import, this
    walk of the segments to the frame header about 0.02 s (bench/formats_import.py).
    """
    if head.startswith(_PNG_SIGNATURE):
        if len(head) < 24 or head[12:16] != b"IHDR":
            return None
        width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
        return ImageInfo(width, height, "png") if width > 0 and height > 0 else None
    if not head.startswith(b"\xff\xd8"):
        return None
    pos, end = 2, len(head)
    while pos + 4 <= end:
        if head[pos] != 0xFF:
            return None
        marker = head[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _JPEG_SOF:
            if pos + 9 > end:
                return None
            height = int.from_bytes(head[pos + 5 : pos + 7], "big")
            width = int.from_bytes(head[pos + 7 : pos + 9], "big")
            return ImageInfo(width, height, "jpg") if width > 0 and height > 0 else None
        if marker == 0xDA or marker == 0xD9:  # a scan or the end before any frame header
            return None
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            pos += 2
            continue
        pos += 2 + int.from_bytes(head[pos + 2 : pos + 4], "big")
    return None


def probe_complete(data: bytes) -> ImageInfo:
    """`probe`, and check that the image data is whole, so a cut-short file is refused when added.

    A JPEG cut short after a valid header probes fine and failed only when read. JPEGs have
    their segments walked to the end-of-image marker (each entropy-coded scan is skipped with
    one regex search, at C speed), PNGs have every chunk's CRC checked up to IEND without
    inflating pixels; other formats are decoded. bench/add_image_check.py, photo-like images:
    a 12 MP JPEG (6.0 MB) takes 1.8 ms to check against 60 ms to decode (decoding at 1/8 scale
    still took 80% of that: libjpeg must read every scan), 0.11x of its whole AddImage; a 64 px
    JPEG 0.02 ms; a 2 MP PNG 1.0 ms against 26 ms to decode.
    """
    img = _open(data)
    info = ImageInfo(*img.size, _format_name(img))
    if info.width <= 0 or info.height <= 0:
        raise MediaError("image data has an empty size")
    try:
        if img.format in ("JPEG", "MPO"):
            problem = _jpeg_incomplete(data)
            if problem:
                raise MediaError(
                    f"the JPEG data is incomplete: {problem} (was the file cut short?)"
                )
        elif img.format == "PNG":
            img.verify()
        else:
            img.load()
    except MediaError:
        raise
    except Image.DecompressionBombError as exc:
        raise MediaError("image is too large to decode") from exc
    except _DECODE_ERRORS as exc:
        raise MediaError(
            f"the image data is incomplete or corrupt: it does not decode to its end ({exc})"
        ) from exc
    return info


# In entropy-coded JPEG data 0xFF is followed by 0x00 (a stuffed byte) or a restart marker
# (0xD0-0xD7); anything else is the next marker.
_NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7]")


def _jpeg_incomplete(data: bytes) -> str | None:
    """Why the segments of a JPEG do not reach an end-of-image marker, or None when they do."""
    pos, end = 2, len(data)  # after SOI
    while pos + 1 < end:
        if data[pos] != 0xFF:
            return f"no marker at byte {pos}"
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xD9:  # EOI
            return None
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            pos += 2
            continue
        if pos + 4 > end:
            break
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if length < 2:
            return f"a segment at byte {pos} has a bad length"
        pos += 2 + length
        if marker == 0xDA:  # start of scan: skip its entropy-coded data
            found = _NEXT_MARKER.search(data, min(pos, end))
            if found is None:
                break
            pos = found.start()
    return f"its {end:,} bytes end before the end-of-image marker"


def validate_operations(ops: object) -> list[dict]:
    """Check an ApertureDB `operations` list; return normalized copies of its entries."""
    if ops is None:
        return []
    if not isinstance(ops, list):
        raise MediaError("operations must be a list")
    return [_validate_op(i, op) for i, op in enumerate(ops, start=1)]


def render(
    data: bytes,
    operations: list[dict] | None = None,
    as_format: str | None = None,
    crop: tuple[int, int, int, int] | None = None,
) -> bytes:
    """Apply `crop`, then `operations` in order, and encode the result.

    With nothing to do the input object itself is returned, so stored bytes reach the
    client byte-identical.
    """
    ops = validate_operations(operations)
    out_format = encode_format(as_format)
    if not ops and crop is None and out_format is None:
        return data

    img = _open(data)
    source_format = _format_name(img)
    try:
        if crop is None and ops and ops[0]["type"] == "resize":
            # Fix the first resize's target from the full size, then let libjpeg decode
            # at 1/2..1/8 scale: most of a downscale's cost is the full-size decode.
            ops[0] = {"type": "resize", **_resize_target(img.size, ops[0])}
            if img.format in ("JPEG", "MPO"):
                img.draft(None, (ops[0]["width"], ops[0]["height"]))
        img.load()
        img = _working_mode(img)
        if crop is not None:
            img = _crop_clamped(img, crop)
        for index, op in enumerate(ops, start=1):
            img = _apply(img, index, op)
        out_format = out_format or ("jpg" if source_format == "jpg" else "png")
        return _encode(img, out_format)
    except MediaError:
        raise
    except _DECODE_ERRORS as exc:
        raise MediaError(f"image data could not be decoded ({exc})") from exc


# --- decoding ---------------------------------------------------------------------------


def _open(data: bytes) -> Image.Image:
    if not data:
        raise MediaError("image data is empty")
    try:
        # Oversized images only warn and still decode; the hard bomb limit refuses. (No
        # catch_warnings here: it costs a quarter of a header read on every AddImage.)
        return Image.open(BytesIO(data), formats=_DECODERS)
    except Image.DecompressionBombError as exc:
        raise MediaError("image is too large to decode") from exc
    except _DECODE_ERRORS as exc:
        raise MediaError(
            "image data could not be decoded (not a JPEG, PNG, TIFF, WebP, GIF or BMP image)"
        ) from exc


def _format_name(img: Image.Image) -> str:
    name = img.format or "unknown"
    return _FORMAT_NAMES.get(name, name.lower())


def _working_mode(img: Image.Image) -> Image.Image:
    """Bring any decoded mode to L, LA, RGB or RGBA."""
    mode = img.mode
    if mode in ("L", "LA", "RGB", "RGBA"):
        return img
    if mode == "P":
        return img.convert("RGBA" if "transparency" in img.info else "RGB")
    if mode.startswith("I") or mode == "F":
        return _to_8bit(img)
    return img.convert(_CONVERT.get(mode, "RGB"))


def _to_8bit(img: Image.Image) -> Image.Image:
    # Pillow's conversion to L clips 16-bit values at 255; scale them down instead.
    # A 32-bit "I" image has no fixed range: scale only when it exceeds 8 bits.
    if img.mode.startswith("I;16") or (img.mode == "I" and img.getextrema()[1] > 255):
        img = img.convert("I").point(lambda v: v / 256)
    return img.convert("L")


def _encode(img: Image.Image, out_format: str) -> bytes:
    buf = BytesIO()
    if out_format == "jpg":
        # JPEG has no alpha channel: drop it rather than fail.
        if img.mode in ("RGBA", "LA"):
            img = img.convert("RGB" if img.mode == "RGBA" else "L")
        img.save(buf, "JPEG", quality=_JPEG_QUALITY)
    else:
        img.save(buf, _ENCODERS[out_format])
    return buf.getvalue()


# --- operations -------------------------------------------------------------------------


def _validate_op(index: int, op: object) -> dict:
    if not isinstance(op, dict):
        raise MediaError(f"operation {index} must be an object")
    kind = op.get("type")
    if kind == "interval":
        raise MediaError(f"operation {index} (interval): interval applies to videos only")
    if not isinstance(kind, str) or kind not in _OP_KEYS:
        names = ", ".join(_OP_KEYS)
        raise MediaError(f"operation {index}: unknown type {kind!r} (expected one of {names})")
    where = f"operation {index} ({kind})"
    extra = sorted(set(op) - _OP_KEYS[kind] - {"type"})
    if extra:
        raise MediaError(f"{where}: unknown key {extra[0]!r}")

    if kind == "resize":
        out: dict = {"type": kind}
        for key in ("width", "height"):
            if op.get(key) is not None:
                out[key] = _int(where, op, key, minimum=1)
        if len(out) == 1:
            raise MediaError(f"{where}: width or height is required")
        return out
    if kind == "crop":
        return {
            "type": kind,
            "x": _int(where, op, "x", minimum=0),
            "y": _int(where, op, "y", minimum=0),
            "width": _int(where, op, "width", minimum=1),
            "height": _int(where, op, "height", minimum=1),
        }
    if kind == "rotate":
        angle = op.get("angle")
        if not _is_number(angle) or not math.isfinite(angle):
            raise MediaError(f"{where}: angle must be a number of degrees")
        grow = op.get("resize", False)
        if not isinstance(grow, bool):
            raise MediaError(f"{where}: resize must be true or false")
        return {"type": kind, "angle": float(angle), "resize": grow}
    if kind == "flip":
        return {"type": kind, "code": _flip_code(where, op.get("code"))}
    value = op.get("value")  # threshold
    if not _is_number(value) or not 0 <= value <= 255:
        raise MediaError(f"{where}: value must be a number from 0 to 255")
    return {"type": kind, "value": value}


def _is_number(value: object) -> bool:
    # bool is an int subclass, but `true` is never a meaningful pixel count or angle.
    return isinstance(value, int | float) and not isinstance(value, bool)


def _int(where: str, op: dict, key: str, minimum: int) -> int:
    value = op.get(key)
    # Integral floats (224.0) come from some JSON encoders; accept them as ints.
    if not _is_number(value) or not float(value).is_integer() or value < minimum:
        kind = "a positive integer" if minimum > 0 else "a non-negative integer"
        raise MediaError(f"{where}: {key} must be {kind}")
    return int(value)


def _flip_code(where: str, code: object) -> int:
    if isinstance(code, str):
        try:
            code = int(code.strip())
        except ValueError:
            code = None
    if not _is_number(code) or not float(code).is_integer():
        raise MediaError(f"{where}: code must be an integer (0, 1 or -1)")
    return int(code)


def _resize_target(size: tuple[int, int], op: dict) -> dict:
    """Fill in a missing width or height so the aspect ratio is kept."""
    width, height = op.get("width"), op.get("height")
    if width is None:
        width = max(1, round(size[0] * height / size[1]))
    elif height is None:
        height = max(1, round(size[1] * width / size[0]))
    return {"width": width, "height": height}


def _crop_clamped(img: Image.Image, box: tuple[int, int, int, int]) -> Image.Image:
    x, y, w, h = (int(v) for v in box)
    left, top = max(0, x), max(0, y)
    right, bottom = min(img.width, x + w), min(img.height, y + h)
    if right <= left or bottom <= top:
        raise MediaError(
            f"crop region ({x}, {y}, {w}x{h}) lies outside the {img.width}x{img.height} image"
        )
    return img.crop((left, top, right, bottom))


def _apply(img: Image.Image, index: int, op: dict) -> Image.Image:
    kind = op["type"]
    if kind == "resize":
        target = _resize_target(img.size, op)
        # reducing_gap: shrink by whole factors first when far from the target; fast and
        # visually the same as a full resample.
        return img.resize(
            (target["width"], target["height"]), Image.Resampling.BILINEAR, reducing_gap=3.0
        )
    if kind == "crop":
        x, y, w, h = op["x"], op["y"], op["width"], op["height"]
        if x + w > img.width or y + h > img.height:
            raise MediaError(
                f"operation {index} (crop): region ({x}, {y}, {w}x{h}) does not fit "
                f"in the {img.width}x{img.height} image"
            )
        return img.crop((x, y, x + w, y + h))
    if kind == "rotate":
        # Counter-clockwise like OpenCV; uncovered corners become black.
        return img.rotate(op["angle"], Image.Resampling.BILINEAR, expand=op["resize"])
    if kind == "flip":
        code = op["code"]
        if code == 0:
            return img.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
        if code > 0:
            return img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return img.transpose(Image.Transpose.ROTATE_180)
    return _threshold(img, op["value"])


def _threshold(img: Image.Image, value: float) -> Image.Image:
    # OpenCV THRESH_TOZERO: values <= threshold become 0, others are kept. Alpha is kept.
    lut = [p if p > value else 0 for p in range(256)]
    identity = list(range(256))
    bands = img.getbands()
    return img.point([v for band in bands for v in (identity if band == "A" else lut)])
