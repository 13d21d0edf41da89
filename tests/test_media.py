"""Image probing, operations and encoding (lensdb.media)."""

from __future__ import annotations

from io import BytesIO

import numpy as np
import pytest
from PIL import Image

from lensdb.media import (
    ImageInfo,
    MediaError,
    encode_format,
    probe,
    probe_header,
    render,
    validate_operations,
)


def encode(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def gradient(width: int = 64, height: int = 48) -> Image.Image:
    """Red = x, green = y: every pixel tells where it came from."""
    ys, xs = np.mgrid[0:height, 0:width]
    arr = np.stack([xs, ys, np.full_like(xs, 100)], axis=-1).astype(np.uint8)
    return Image.fromarray(arr, "RGB")


def marked(width: int = 40, height: int = 30) -> bytes:
    """Black PNG with one white pixel at (1, 2)."""
    img = Image.new("L", (width, height), 0)
    img.putpixel((1, 2), 255)
    return encode(img, "PNG")


def decode(data: bytes) -> Image.Image:
    img = Image.open(BytesIO(data))
    img.load()
    return img


def white_pixels(data: bytes) -> list[tuple[int, int]]:
    arr = np.asarray(decode(data))
    ys, xs = np.nonzero(arr > 128)
    return list(zip(xs.tolist(), ys.tolist(), strict=True))


# --- probe ------------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "name"), [("JPEG", "jpg"), ("PNG", "png"), ("TIFF", "tiff")])
def test_probe_formats(fmt: str, name: str) -> None:
    assert probe(encode(gradient(64, 48), fmt)) == ImageInfo(64, 48, name)


def test_probe_reports_stored_size_not_exif_orientation() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 on display
    data = encode(gradient(64, 48), "JPEG", exif=exif)
    assert probe(data) == ImageInfo(64, 48, "jpg")


@pytest.mark.parametrize(
    "data", [b"", b"garbage" * 20, b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0\x00"]
)
def test_probe_rejects_garbage(data: bytes) -> None:
    with pytest.raises(MediaError):
        probe(data)


@pytest.mark.parametrize(
    ("mode", "fmt", "kw"),
    [
        ("RGB", "JPEG", {}),
        ("RGB", "JPEG", {"progressive": True}),
        ("L", "JPEG", {}),
        ("CMYK", "JPEG", {}),
        ("RGBA", "PNG", {}),
        ("P", "PNG", {}),
    ],
)
def test_probe_header_agrees_with_probe(mode: str, fmt: str, kw: dict) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    extra = {"exif": exif, "comment": b"x" * 3000} if fmt == "JPEG" else {}
    data = encode(Image.new(mode, (123, 45)), fmt, **kw, **extra)
    assert probe_header(data) == probe(data) == ImageInfo(123, 45, probe(data).format)


@pytest.mark.parametrize("fmt", ["TIFF", "WEBP", "GIF", "BMP"])
def test_probe_header_leaves_other_formats_to_probe(fmt: str) -> None:
    assert probe_header(encode(gradient(32, 16), fmt)) is None


def test_probe_header_needs_the_frame_header() -> None:
    data = encode(gradient(64, 48), "JPEG", comment=b"x" * 5000)
    sof = data.index(b"\xff\xc0")
    assert probe_header(data[: sof + 9]) == ImageInfo(64, 48, "jpg")
    for cut in (0, 2, 10, sof, sof + 8):
        assert probe_header(data[:cut]) is None
    assert probe_header(b"garbage" * 20) is None
    assert probe_header(b"\xff\xd8" + b"\x00" * 40) is None  # no marker where one must be


def test_media_error_is_value_error() -> None:
    assert issubclass(MediaError, ValueError)


# --- render: nothing asked / formats ----------------------------------------------------


def test_render_without_work_returns_same_object() -> None:
    data = encode(gradient(), "PNG")
    assert render(data) is data
    assert render(data, []) is data


def test_render_keeps_source_format() -> None:
    ops = [{"type": "resize", "width": 32}]
    assert probe(render(encode(gradient(), "JPEG"), ops)).format == "jpg"
    assert probe(render(encode(gradient(), "PNG"), ops)).format == "png"
    assert probe(render(encode(gradient(), "TIFF"), ops)).format == "png"


def test_as_format_round_trip() -> None:
    png = encode(gradient(), "PNG")
    jpg = render(png, as_format="jpeg")
    assert probe(jpg) == ImageInfo(64, 48, "jpg")
    back = render(jpg, as_format="png")
    assert probe(back) == ImageInfo(64, 48, "png")
    # PNG is lossless from here on; JPEG loss stays small on a smooth gradient.
    diff = np.abs(np.asarray(decode(back), int) - np.asarray(gradient(), int))
    assert diff.mean() < 3


def test_as_format_rejects_unknown() -> None:
    with pytest.raises(MediaError, match="output format"):
        render(encode(gradient(), "PNG"), as_format="gif")
    assert encode_format("JPEG") == "jpg"
    assert encode_format(None) is None


def test_rgba_to_jpeg_drops_alpha_and_l_stays_l() -> None:
    rgba = Image.new("RGBA", (8, 8), (10, 200, 30, 128))
    out = decode(render(encode(rgba, "PNG"), as_format="jpg"))
    assert out.mode == "RGB"
    gray = decode(render(encode(Image.new("L", (8, 8), 77), "PNG"), as_format="jpg"))
    assert gray.mode == "L"


def test_palette_png_renders() -> None:
    pal = gradient().convert("P")
    out = decode(render(encode(pal, "PNG"), [{"type": "flip", "code": 1}]))
    assert out.mode == "RGB" and out.size == (64, 48)


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_16bit_scaled_not_clipped(fmt: str) -> None:
    arr = np.array([[0, 200, 40000, 65535]], dtype=np.uint16)
    out = decode(render(encode(Image.fromarray(arr), fmt), as_format="png"))
    assert out.mode == "L"
    assert np.asarray(out).tolist() == [(arr >> 8).tolist()[0]]


def test_undecodable_pixel_data() -> None:
    data = encode(gradient(64, 48), "JPEG")
    truncated = data[: len(data) // 3]
    with pytest.raises(MediaError, match="could not be decoded"):
        render(truncated, as_format="png")


# --- operations -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "size"),
    [
        ({"width": 20, "height": 10}, (20, 10)),
        ({"width": 32}, (32, 24)),
        ({"height": 12}, (16, 12)),
        ({"width": 128, "height": 96}, (128, 96)),
    ],
)
def test_resize(op: dict, size: tuple[int, int]) -> None:
    for fmt in ("JPEG", "PNG"):
        out = render(encode(gradient(64, 48), fmt), [{"type": "resize", **op}])
        assert decode(out).size == size


def test_jpeg_draft_resize_matches_full_decode() -> None:
    data = encode(gradient(640, 480), "JPEG", quality=95)
    fast = np.asarray(decode(render(data, [{"type": "resize", "width": 160, "height": 120}])))
    slow = gradient(640, 480).resize((160, 120), Image.Resampling.BILINEAR)
    assert fast.shape == (120, 160, 3)
    assert np.abs(fast.astype(int) - np.asarray(slow, int)).mean() < 3


def test_crop_operation_pixels() -> None:
    out = decode(
        render(
            encode(gradient(), "PNG"), [{"type": "crop", "x": 5, "y": 7, "width": 10, "height": 4}]
        )
    )
    arr = np.asarray(out)
    assert out.size == (10, 4)
    assert arr[0, 0].tolist() == [5, 7, 100]
    assert arr[3, 9].tolist() == [14, 10, 100]


def test_crop_operation_outside_image() -> None:
    with pytest.raises(MediaError, match=r"operation 1 \(crop\): region"):
        render(
            encode(gradient(), "PNG"), [{"type": "crop", "x": 60, "y": 0, "width": 10, "height": 4}]
        )


def test_crop_argument_applied_first_and_clamped() -> None:
    png = encode(gradient(), "PNG")
    out = decode(render(png, crop=(-5, 40, 20, 100)))
    assert out.size == (15, 8)
    assert np.asarray(out)[0, 0].tolist() == [0, 40, 100]
    # The crop runs before operations: the resize sees the 15x8 region.
    out = decode(render(png, [{"type": "resize", "width": 30}], crop=(-5, 40, 20, 100)))
    assert out.size == (30, 16)
    with pytest.raises(MediaError, match="outside"):
        render(png, crop=(100, 100, 5, 5))


@pytest.mark.parametrize(
    ("code", "where"),
    [(0, (1, 27)), (1, (38, 2)), (-1, (38, 27)), ("1", (38, 2)), ("-1", (38, 27)), (5, (38, 2))],
)
def test_flip_codes(code: object, where: tuple[int, int]) -> None:
    out = render(marked(), [{"type": "flip", "code": code}])
    assert white_pixels(out) == [where]


def test_rotate_90_with_resize_swaps_dims() -> None:
    out = render(marked(40, 30), [{"type": "rotate", "angle": 90, "resize": True}])
    assert decode(out).size == (30, 40)
    # Counter-clockwise: (x, y) -> (y, width - 1 - x).
    assert white_pixels(out) == [(2, 38)]


def test_rotate_without_resize_keeps_size() -> None:
    out = render(marked(40, 30), [{"type": "rotate", "angle": 30}])
    assert decode(out).size == (40, 30)


def test_threshold_zeroes_low_values() -> None:
    arr = np.array([[0, 50, 100, 101, 200, 255]], dtype=np.uint8)
    out = render(encode(Image.fromarray(arr, "L"), "PNG"), [{"type": "threshold", "value": 100}])
    assert np.asarray(decode(out)).tolist() == [[0, 0, 0, 101, 200, 255]]


def test_threshold_per_channel_keeps_alpha() -> None:
    img = Image.new("RGBA", (2, 2), (30, 200, 90, 40))
    out = render(encode(img, "PNG"), [{"type": "threshold", "value": 90}])
    assert decode(out).getpixel((0, 0)) == (0, 200, 0, 40)


def test_operations_run_in_order() -> None:
    ops = [
        {"type": "crop", "x": 0, "y": 0, "width": 20, "height": 10},
        {"type": "rotate", "angle": 90, "resize": True},
        {"type": "resize", "width": 5},
    ]
    assert decode(render(encode(gradient(), "PNG"), ops)).size == (5, 10)


# --- validation -------------------------------------------------------------------------


def test_validate_normalizes() -> None:
    ops = validate_operations(
        [
            {"type": "resize", "width": 224.0},
            {"type": "rotate", "angle": 45},
            {"type": "flip", "code": "-1"},
            {"type": "threshold", "value": 10},
        ]
    )
    assert ops == [
        {"type": "resize", "width": 224},
        {"type": "rotate", "angle": 45.0, "resize": False},
        {"type": "flip", "code": -1},
        {"type": "threshold", "value": 10},
    ]
    assert validate_operations(None) == []


@pytest.mark.parametrize(
    ("ops", "message"),
    [
        ({"type": "resize"}, "operations must be a list"),
        (["resize"], "operation 1 must be an object"),
        ([{"type": "blur"}], "operation 1: unknown type 'blur'"),
        ([{"width": 3}], "operation 1: unknown type None"),
        ([{"type": "interval", "start": 0}], "interval applies to videos only"),
        (
            [{"type": "flip", "code": 1}, {"type": "resize"}],
            r"operation 2 \(resize\): width or height is required",
        ),
        (
            [{"type": "flip", "code": 1}, {"type": "resize", "width": 0}],
            r"operation 2 \(resize\): width must be a positive integer",
        ),
        ([{"type": "resize", "width": 10, "height": 2.5}], "height must be a positive integer"),
        ([{"type": "resize", "width": True}], "width must be a positive integer"),
        ([{"type": "resize", "widht": 10}], "unknown key 'widht'"),
        (
            [{"type": "crop", "x": -1, "y": 0, "width": 1, "height": 1}],
            r"\(crop\): x must be a non-negative integer",
        ),
        (
            [{"type": "crop", "x": 0, "y": 0, "width": 1}],
            r"\(crop\): height must be a positive integer",
        ),
        ([{"type": "rotate"}], r"\(rotate\): angle must be a number"),
        ([{"type": "rotate", "angle": 90, "resize": "yes"}], "resize must be true or false"),
        ([{"type": "flip", "code": "h"}], r"\(flip\): code must be an integer"),
        ([{"type": "flip"}], r"\(flip\): code must be an integer"),
        (
            [{"type": "threshold", "value": 256}],
            r"\(threshold\): value must be a number from 0 to 255",
        ),
    ],
)
def test_validate_errors(ops: object, message: str) -> None:
    with pytest.raises(MediaError, match=message):
        validate_operations(ops)


def test_render_validates() -> None:
    with pytest.raises(MediaError, match="unknown type"):
        render(encode(gradient(), "PNG"), [{"type": "sharpen"}])


def test_content_type_from_magic_numbers():
    from lensdb.media import content_type

    for fmt, mime in (
        ("JPEG", "image/jpeg"),
        ("PNG", "image/png"),
        ("TIFF", "image/tiff"),
        ("GIF", "image/gif"),
        ("BMP", "image/bmp"),
        ("WEBP", "image/webp"),
    ):
        buf = BytesIO()
        Image.new("RGB", (4, 4)).save(buf, fmt)
        assert content_type(buf.getvalue()[:16]) == mime
    assert content_type(b"not an image") == "application/octet-stream"


def test_parse_range_is_one_parser_for_the_gateway_and_the_plugin() -> None:
    from lensdb.media import parse_range

    assert parse_range("bytes=0-99", 1000) == (0, 99)
    assert parse_range("bytes=-500", 1000) == (
        500,
        999,
    )  # the last 500 (the plugin once sent the first 500)
    assert parse_range("bytes=-5000", 1000) == (0, 999)
    assert parse_range("bytes=900-", 1000) == (900, 999)
    assert parse_range("bytes=990-2000", 1000) == (990, 999)
    assert parse_range("bytes=1000-", 1000) is False  # unsatisfiable: 416
    assert parse_range("bytes=-0", 1000) is False
    assert parse_range(None, 1000) is None and parse_range("items=0-1", 1000) is None
    assert parse_range("bytes=0-1,5-6", 1000) is None  # several ranges: the whole body is allowed
