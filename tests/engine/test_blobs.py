"""AddBlob, FindBlob, UpdateBlob, DeleteBlob and the output blob array."""

from __future__ import annotations

import os

import pytest

from .helpers import body, entities, fail, ok, one, open_db, pack_files, packs_in_rows, snapshot


def test_blob_bytes_round_trip_exactly(db):
    payloads = [b"\x00\x01\x02", os.urandom(1 << 20), bytes(range(256)) * 3, b"x"]
    ok(db, [{"AddBlob": {"properties": {"i": i}}} for i in range(len(payloads))], payloads)
    r, blobs = ok(db, [{"FindBlob": {"blobs": True, "results": {"list": ["i"]}}}])
    assert blobs == payloads
    assert body(r)["returned"] == len(blobs) == 4
    assert [e["_blob_index"] for e in body(r)["entities"]] == [0, 1, 2, 3]


def test_empty_blob(db):
    ok(db, [{"AddBlob": {}}], [b""])
    assert ok(db, [{"FindBlob": {"blobs": True}}])[1] == [b""]


def test_bytearray_and_memoryview_inputs(db):
    ok(
        db,
        [{"AddBlob": {"properties": {"i": 0}}}, {"AddBlob": {"properties": {"i": 1}}}],
        [bytearray(b"abc"), memoryview(b"defg")],
    )
    assert ok(db, [{"FindBlob": {"blobs": True}}])[1] == [b"abc", b"defg"]


def test_sdk_blob_loader_check_shape(db):
    ok(
        db,
        [{"AddBlob": {"properties": {"license": "cc", "n": i}}} for i in range(3)],
        [b"a", b"b", b"c"],
    )
    r, blobs = ok(db, [{"FindBlob": {"blobs": True, "results": {"list": ["license"], "limit": 1}}}])
    assert blobs == [b"a"] and body(r)["returned"] == 1
    assert body(r)["entities"] == [{"license": "cc", "_blob_index": 0}]


def test_find_blob_without_blobs_returns_none(db):
    ok(db, [{"AddBlob": {"properties": {"n": 1}}}], [b"zz"])
    r, blobs = ok(db, [{"FindBlob": {"results": {"list": ["n"]}}}])
    assert blobs == [] and body(r)["entities"] == [{"n": 1}]


def test_blobs_start_with_blobs_of_earlier_commands(db):
    ok(
        db,
        [{"AddBlob": {"properties": {"k": "a"}}}, {"AddBlob": {"properties": {"k": "b"}}}],
        [b"A", b"B"],
    )
    r, blobs = ok(
        db,
        [
            {"FindBlob": {"blobs": True, "constraints": {"k": ["==", "b"]}}},
            {"FindBlob": {"blobs": True, "results": {"list": ["k"]}}},
        ],
    )
    assert blobs == [b"B", b"A", b"B"]
    assert body(r, 1)["blobs_start"] == 1
    assert [e["_blob_index"] for e in body(r, 1)["entities"]] == [1, 2]


def test_add_responses_carry_no_blobs_start(db):
    r, _ = ok(db, [{"AddBlob": {"_ref": 1}}], [b"x"])
    assert body(r) == {"status": 0}


def test_update_blob(db):
    ok(db, [{"AddBlob": {"properties": {"n": 1}}}], [b"x"])
    r = one(db, {"UpdateBlob": {"constraints": {"n": ["==", 1]}, "properties": {"n": 2}}})
    assert r == {"status": 0, "count": 1}
    assert entities(db, "FindBlob", results={"list": ["n"]}) == [{"n": 2}]
    assert ok(db, [{"FindBlob": {"blobs": True}}])[1] == [b"x"]


def test_a_query_writes_its_blobs_as_one_pack(db, folder):
    ok(db, [{"AddBlob": {"properties": {"n": i}}} for i in range(3)], [b"0", b"11", b"222"])
    ok(db, [{"AddBlob": {"properties": {"n": 3}}}], [b"3333"])
    assert len(pack_files(folder)) == 2
    r, blobs = ok(db, [{"FindBlob": {"blobs": True, "sort": "n"}}])
    assert blobs == [b"0", b"11", b"222", b"3333"]


def test_a_pack_goes_with_its_last_blob(db, folder):
    ok(db, [{"AddBlob": {"properties": {"n": i}}} for i in range(3)], [b"0", b"1", b"2"])
    ok(db, [{"AddBlob": {"properties": {"n": 9}}}], [b"9"])
    assert len(pack_files(folder)) == 2
    r = one(db, {"DeleteBlob": {"constraints": {"n": ["<", 2]}}})
    assert r == {"status": 0, "count": 2}
    assert len(pack_files(folder)) == 2  # blob 2 still lives in the first pack
    assert ok(db, [{"FindBlob": {"blobs": True, "sort": "n"}}])[1] == [b"2", b"9"]
    assert one(db, {"DeleteBlob": {"constraints": {"n": ["==", 2]}}})["count"] == 1
    assert len(pack_files(folder)) == 1
    assert {f.split("/")[-1] for f in pack_files(folder)} == packs_in_rows(folder)
    assert ok(db, [{"FindBlob": {"blobs": True}}])[1] == [b"9"]


def test_failed_delete_keeps_the_files(db, folder):
    ok(db, [{"AddBlob": {}}], [b"keep"])
    before = snapshot(folder)
    fail(db, [{"DeleteBlob": {}}, {"DeleteEntity": {"ref": 9}}])
    assert snapshot(folder) == before
    assert ok(db, [{"FindBlob": {"blobs": True}}])[1] == [b"keep"]


def test_blobs_are_consumed_in_command_order(db):
    ok(
        db,
        [
            {"AddBlob": {"properties": {"k": 1}}},
            {"AddEntity": {"class": "E"}},
            {"AddBlob": {"properties": {"k": 2}}},
            {"FindBlob": {}},
            {"AddBlob": {"properties": {"k": 3}}},
        ],
        [b"one", b"two", b"three"],
    )
    r, blobs = ok(db, [{"FindBlob": {"blobs": True, "results": {"list": ["k"], "sort": "k"}}}])
    assert blobs == [b"one", b"two", b"three"]


def test_response_limit_answers_status_4(folder):
    with open_db(folder, max_response_bytes=1000) as db:
        ok(db, [{"AddBlob": {}}, {"AddBlob": {}}], [b"a" * 600, b"b" * 600])
        assert len(ok(db, [{"FindBlob": {"blobs": True, "limit": 1}}])[1]) == 1
        r = fail(db, [{"FindBlob": {"blobs": True}}], status=4)
        assert "FindBlob" in r["info"]


@pytest.mark.parametrize(
    "blobs, fragment",
    [
        ([], "Expected blobs: 1. Received blobs: 0"),
        ([b"a", b"b"], "Expected blobs: 1. Received blobs: 2"),
        (["text"], "byte"),
        ([None], "byte"),
        ([123], "byte"),
    ],
)
def test_blob_count_and_type_errors(db, folder, blobs, fragment):
    before = snapshot(folder)
    r = fail(db, [{"AddBlob": {}}], blobs)
    assert fragment in r["info"]
    assert snapshot(folder) == before


def test_url_is_refused(db):
    r = fail(db, [{"AddBlob": {"url": "http://example.com/x"}}], [])
    assert "url" in r["info"]


def test_media_source_reads_just_the_range_asked_for(db):
    # What the media gateway serves from: one lookup, then ranged reads (a local pack file's
    # range, or a ranged GET from object storage), with one range reader per backend.
    data = bytes(range(256)) * 40
    ok(
        db,
        [{"AddBlob": {"properties": {"n": 1}}}, {"AddBlob": {"properties": {"n": 2}}}],
        [b"x", data],
    )
    uid = entities(db, "FindBlob", constraints={"n": ["==", 2]}, uniqueids=True)[0]["_uniqueid"]
    source = db.media_source("_Blob", uid)
    assert source is not None and source.length == len(data)
    assert source.read(0, 16) == data[:16]
    assert source.read(1000, 500) == data[1000:1500]
    assert source.read(len(data) - 10, 100) == data[-10:]  # clipped to the blob
    assert db.media_source("_Image", uid) is None  # not an image
    assert db.media_source("_Blob", "not-an-id") is None
    one(db, {"DeleteBlob": {"constraints": {"n": ["==", 2]}}})
    assert db.media_source("_Blob", uid) is None  # a delete shows at once
