"""AddImage, FindImage, UpdateImage, DeleteImage: sizes, operations, formats, stored bytes."""

from __future__ import annotations

import pytest

from .helpers import (
    body,
    decode,
    encode,
    entities,
    fail,
    gradient_png,
    jpeg,
    ok,
    one,
    open_db,
    pack_files,
    png,
    snapshot,
)


def add_image(db, data, **params):
    params.setdefault("properties", {})
    return one(db, {"AddImage": params}, [data])


def fetch(db, **params):
    """(response, blobs) of one FindImage asking for blobs."""
    params.setdefault("blobs", True)
    r, blobs = ok(db, [{"FindImage": params}])
    return body(r), blobs


def pixel(data, x, y):
    return decode(data).convert("RGB").getpixel((x, y))


def test_width_and_height_are_stored(db):
    add_image(db, jpeg(64, 48), properties={"id": 1})
    add_image(db, png(10, 20), properties={"id": 2})
    got = entities(db, "FindImage", results={"list": ["id", "width", "height"], "sort": "id"})
    assert got == [{"id": 1, "width": 64, "height": 48}, {"id": 2, "width": 10, "height": 20}]


def test_caller_width_and_height_win(db):
    add_image(db, jpeg(64, 48), properties={"width": 640, "height": 480})
    assert entities(db, "FindImage", results={"list": ["width", "height"]}) == [
        {"width": 640, "height": 480}
    ]


def test_blobs_default_to_false(db):
    add_image(db, jpeg())
    r, blobs = ok(db, [{"FindImage": {"results": {"list": ["width"]}}}])
    assert blobs == [] and "blobs_start" not in body(r)


@pytest.mark.parametrize("make", [jpeg, png, gradient_png])
def test_stored_bytes_come_back_unchanged(db, make):
    data = make()
    add_image(db, data)
    r, blobs = fetch(db)
    assert blobs == [data]
    assert r["returned"] == 1 and r["blobs_start"] == 0 and r["entities"][0]["_blob_index"] == 0


def test_tiff_is_accepted(db):
    from PIL import Image

    data = encode(Image.new("RGB", (7, 5), (1, 2, 3)), "TIFF")
    add_image(db, data)
    assert entities(db, "FindImage", results={"list": ["width", "height"]}) == [
        {"width": 7, "height": 5}
    ]
    assert fetch(db)[1] == [data]


@pytest.mark.parametrize(
    "fmt, magic, pil",
    [("png", b"\x89PNG", "PNG"), ("jpg", b"\xff\xd8", "JPEG"), ("jpeg", b"\xff\xd8", "JPEG")],
)
def test_as_format_reencodes(db, fmt, magic, pil):
    add_image(db, png(30, 20) if fmt != "png" else jpeg(30, 20))
    _, [data] = fetch(db, as_format=fmt)
    assert data.startswith(magic)
    img = decode(data)
    assert img.format == pil and img.size == (30, 20)


def test_resize(db):
    add_image(db, jpeg(64, 48))
    _, [data] = fetch(db, operations=[{"type": "resize", "width": 32, "height": 10}])
    assert decode(data).size == (32, 10)
    _, [data] = fetch(db, operations=[{"type": "resize", "width": 32}])
    assert decode(data).size == (32, 24)


def test_crop_takes_the_right_pixels(db):
    add_image(db, gradient_png(64, 48))
    _, [data] = fetch(db, operations=[{"type": "crop", "x": 10, "y": 5, "width": 20, "height": 8}])
    img = decode(data)
    assert img.size == (20, 8)
    assert pixel(data, 0, 0) == (10, 5, 100) and pixel(data, 19, 7) == (29, 12, 100)


@pytest.mark.parametrize(
    "code, corner", [(0, (0, 47)), (1, (63, 0)), (-1, (63, 47)), ("1", (63, 0)), ("-1", (63, 47))]
)
def test_flip(db, code, corner):
    add_image(db, gradient_png(64, 48))
    _, [data] = fetch(db, operations=[{"type": "flip", "code": code}])
    assert pixel(data, 0, 0)[:2] == corner


def test_rotate(db):
    add_image(db, gradient_png(64, 48))
    _, [data] = fetch(db, operations=[{"type": "rotate", "angle": 90, "resize": True}])
    assert decode(data).size == (48, 64)
    _, [data] = fetch(db, operations=[{"type": "rotate", "angle": 90}])
    assert decode(data).size == (64, 48)


def test_threshold(db):
    from PIL import Image

    img = Image.new("L", (4, 1))
    for x, v in enumerate([10, 100, 150, 250]):
        img.putpixel((x, 0), v)
    add_image(db, encode(img, "PNG"))
    _, [data] = fetch(db, operations=[{"type": "threshold", "value": 120}])
    out = decode(data).convert("L")
    assert [out.getpixel((x, 0)) for x in range(4)] == [0, 0, 150, 250]


def test_operations_apply_in_order(db):
    add_image(db, gradient_png(64, 48))
    _, [data] = fetch(
        db,
        operations=[
            {"type": "crop", "x": 32, "y": 0, "width": 32, "height": 48},
            {"type": "flip", "code": 1},
        ],
        as_format="png",
    )
    assert decode(data).size == (32, 48) and pixel(data, 0, 0)[:2] == (63, 0)


def test_operations_keep_the_source_format_without_as_format(db):
    add_image(db, jpeg(64, 48))
    _, [data] = fetch(db, operations=[{"type": "resize", "width": 16, "height": 12}])
    assert data.startswith(b"\xff\xd8")


def test_operations_never_change_what_is_stored(db):
    original = gradient_png()
    add_image(db, original)
    fetch(db, operations=[{"type": "resize", "width": 8, "height": 8}], as_format="jpg")
    assert fetch(db)[1] == [original]


@pytest.mark.parametrize(
    "ops, fragment",
    [
        ([{"type": "blur"}], "blur"),
        ([{"type": "resize"}], "width"),
        ([{"type": "resize", "width": -1}], "width"),
        ([{"type": "crop", "x": 0, "y": 0, "width": 1000, "height": 10}], "crop"),
        ([{"type": "rotate"}], "angle"),
        ([{"type": "flip", "code": "up"}], "code"),
        ([{"type": "threshold", "value": 999}], "value"),
        ([{"type": "interval", "start": 0, "stop": 1, "step": 1}], "interval"),
        ({"type": "resize", "width": 5}, "list"),
    ],
)
def test_bad_operations_are_errors(db, ops, fragment):
    add_image(db, jpeg())
    r = fail(db, [{"FindImage": {"blobs": True, "operations": ops}}])
    assert fragment in r["info"] and "FindImage" in r["info"]


def test_bad_as_format_is_an_error(db):
    add_image(db, jpeg())
    assert "gif" in fail(db, [{"FindImage": {"blobs": True, "as_format": "gif"}}])["info"]


def test_operations_at_add_time_are_stored(db):
    add_image(
        db,
        jpeg(64, 48),
        operations=[{"type": "resize", "width": 16, "height": 12}],
        properties={"id": 1},
    )
    assert entities(db, "FindImage", results={"list": ["width", "height"]}) == [
        {"width": 16, "height": 12}
    ]
    [data] = fetch(db)[1]
    assert decode(data).size == (16, 12) and data.startswith(b"\xff\xd8")


def test_format_at_add_time_converts(db):
    add_image(db, png(20, 10), format="jpg")
    [data] = fetch(db)[1]
    assert data.startswith(b"\xff\xd8") and decode(data).size == (20, 10)
    original = jpeg(8, 8)
    add_image(db, original, format="jpg", properties={"same": True})
    assert fetch(db, constraints={"same": ["==", True]})[1] == [original]


@pytest.mark.parametrize("data", [b"", b"not an image", b"\xff\xd8\xff\xe0garbage", png()[:40]])
def test_undecodable_image_is_an_error_and_nothing_is_stored(db, folder, data):
    add_image(db, jpeg(), properties={"keep": 1})
    before = snapshot(folder)
    r = fail(
        db, [{"AddEntity": {"class": "Before"}}, {"AddImage": {"properties": {"id": 2}}}], [data]
    )
    assert "AddImage" in r["info"] and "command 2" in r["info"]
    assert snapshot(folder) == before


def _photo_jpeg(progressive: bool = False) -> bytes:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    return encode(Image.fromarray(pixels, "RGB"), "JPEG", quality=90, progressive=progressive)


@pytest.mark.parametrize("progressive", [False, True])
@pytest.mark.parametrize("keep", [0.1, 0.5, 0.99, -2])
def test_cut_short_jpeg_is_refused_and_the_query_adds_nothing(db, folder, progressive, keep):
    whole = _photo_jpeg(progressive)
    cut = whole[: int(len(whole) * keep)] if keep > 0 else whole[:keep]
    add_image(db, jpeg(), properties={"keep": 1})
    before = snapshot(folder)
    r = fail(
        db,
        [
            {"AddEntity": {"class": "Before"}},
            {"AddImage": {"properties": {"cut": True}}},
            {"AddImage": {"properties": {"whole": True}}},
        ],
        [cut, whole],
    )
    assert r["FailedCommand"] == "AddImage" and "command 2 of 3" in r["info"]
    assert "incomplete" in r["info"] and "cut short" in r["info"]
    assert snapshot(folder) == before  # no row, no pack file
    # With operations the image is decoded whole, which refuses it as well.
    r = fail(db, [{"AddImage": {"operations": [{"type": "flip", "code": 1}]}}], [cut])
    assert "could not be decoded" in r["info"]
    assert snapshot(folder) == before


def test_whole_images_with_trailing_bytes_or_progressive_scans_are_accepted(db):
    for data in (
        _photo_jpeg(),
        _photo_jpeg(progressive=True),
        _photo_jpeg() + b"\x00trailer",
        png(),
    ):
        add_image(db, data, properties={"n": len(data)})
        assert fetch(db, constraints={"n": ["==", len(data)]})[1] == [data]


def test_cut_short_png_is_refused(db, folder):
    before = snapshot(folder)
    r = fail(db, [{"AddImage": {}}], [gradient_png()[:-8]])
    assert "incomplete or corrupt" in r["info"]
    assert snapshot(folder) == before


def test_undecodable_image_with_format_or_operations(db, folder):
    before = snapshot(folder)
    fail(db, [{"AddImage": {"format": "png"}}], [b"junk"])
    fail(db, [{"AddImage": {"operations": [{"type": "resize", "width": 2}]}}], [b"junk"])
    assert snapshot(folder) == before


def test_add_image_parameter_errors(db, folder):
    before = snapshot(folder)
    assert "format" in fail(db, [{"AddImage": {"format": "gif"}}], [jpeg()])["info"]
    assert (
        "resize" in fail(db, [{"AddImage": {"operations": [{"type": "resize"}]}}], [jpeg()])["info"]
    )
    assert snapshot(folder) == before


def test_blob_order_indexes_and_starts_across_commands(db):
    a, b, c = png(1, 1), png(2, 2), png(3, 3)
    ok(db, [{"AddImage": {"properties": {"i": i}}} for i in range(3)], [a, b, c])
    r, blobs = ok(
        db,
        [
            {"FindImage": {"blobs": True, "constraints": {"i": ["==", 2]}}},
            {"FindImage": {"blobs": False, "results": {"list": ["i"]}}},
            {
                "FindImage": {
                    "blobs": True,
                    "results": {"list": ["i"], "sort": {"key": "i", "order": "descending"}},
                    "limit": 2,
                }
            },
        ],
    )
    assert blobs == [c, c, b]
    assert body(r, 0)["blobs_start"] == 0 and body(r, 0)["returned"] == 1
    assert "blobs_start" not in body(r, 1)
    third = body(r, 2)
    assert third["blobs_start"] == 1 and third["returned"] == 2
    assert [(e["i"], e["_blob_index"]) for e in third["entities"]] == [(2, 1), (1, 2)]


def test_label_studio_image_fetch_shape(db):
    data = jpeg()
    add_image(db, data)
    uid = entities(db, "FindImage", uniqueids=True)[0]["_uniqueid"]
    r, blobs = ok(
        db,
        [
            {
                "FindImage": {
                    "blobs": True,
                    "constraints": {"_uniqueid": ["==", uid]},
                    "as_format": "jpg",
                }
            }
        ],
    )
    assert body(r)["returned"] == 1 and len(blobs) == 1 and blobs[0].startswith(b"\xff\xd8")


def test_update_image_changes_properties_only(db):
    data = jpeg()
    add_image(db, data, properties={"id": 1})
    r = one(
        db,
        {
            "UpdateImage": {
                "constraints": {"id": ["==", 1]},
                "properties": {"tag": "x"},
                "remove_props": ["id"],
            }
        },
    )
    assert r == {"status": 0, "count": 1}
    got = entities(db, "FindImage", results={"all_properties": True})[0]
    assert got["tag"] == "x" and "id" not in got and got["width"] == 64
    assert fetch(db)[1] == [data]


def test_delete_image_removes_its_file_and_regions(db, folder):
    add_image(db, jpeg(), properties={"id": 1})
    add_image(db, jpeg(), properties={"id": 2})
    ok(
        db,
        [
            {"FindImage": {"_ref": 1, "constraints": {"id": ["==", 1]}}},
            {
                "AddBoundingBox": {
                    "image_ref": 1,
                    "rectangle": {"x": 0, "y": 0, "width": 5, "height": 5},
                }
            },
            {"AddPolygon": {"image_ref": 1, "polygons": [[[0, 0], [5, 0], [5, 5]]]}},
        ],
    )
    assert len(pack_files(folder)) == 2
    assert one(db, {"DeleteImage": {"constraints": {"id": ["==", 1]}}}) == {"status": 0, "count": 1}
    assert len(pack_files(folder)) == 1
    assert one(db, {"FindBoundingBox": {"results": {"count": True}}})["count"] == 0
    assert one(db, {"FindPolygon": {"results": {"count": True}}})["count"] == 0
    assert one(db, {"FindConnection": {"results": {"count": True}}})["count"] == 0
    assert [e["id"] for e in entities(db, "FindImage", results={"list": ["id"]})] == [2]


def test_find_image_with_image_and_entity_graph(db):
    ok(
        db,
        [
            {"AddEntity": {"_ref": 1, "class": "Dataset", "properties": {"name": "d"}}},
            {"AddImage": {"properties": {"id": 1}, "connect": {"ref": 1, "class": "in_set"}}},
            {"AddImage": {"properties": {"id": 2}}},
        ],
        [jpeg(), jpeg()],
    )
    r, _ = ok(
        db,
        [
            {"FindEntity": {"_ref": 1, "with_class": "Dataset"}},
            {
                "FindImage": {
                    "is_connected_to": {"ref": 1, "direction": "in"},
                    "results": {"list": ["id"]},
                }
            },
        ],
    )
    assert body(r, 1)["entities"] == [{"id": 1}]


def test_image_blob_reads_survive_reopen(folder):

    data = gradient_png()
    with open_db(folder) as db:
        add_image(db, data)
    with open_db(folder) as db:
        assert fetch(db)[1] == [data]
