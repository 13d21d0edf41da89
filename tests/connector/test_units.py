"""Pure pieces of the gateway and connector: signing, ranges, ref renumbering, task -> image, times."""

from __future__ import annotations

from lensdb.connector.lsclient import ls_time
from lensdb.connector.pull import (
    LISTED,
    RANGES,
    SNAPSHOTS,
    WHOLE,
    annotated_share,
    full_read_way,
    id_ranges,
)
from lensdb.connector.state import instance_key
from lensdb.gateway.httpcache import parse_range, strong_etag
from lensdb.gateway.signing import Signer
from lensdb.labelstudio import queries as Q
from lensdb.labelstudio.annotations import combine, image_of_task, parse_time


def test_signing_covers_path_params_and_expiry() -> None:
    s = Signer(b"k" * 32)
    url = s.sign("/media/images/2.0.1", 60, {"width": 10}, now=1000)
    path, _, query = url.partition("?")
    items = [tuple(p.split("=", 1)) for p in query.split("&")]
    assert s.check(path, items, now=1030) is None
    assert s.check(path, items, now=1061) == "link expired"
    assert s.check("/media/images/2.0.2", items, now=1030) == "bad signature"
    assert (
        s.check(path, [(k, "11" if k == "width" else v) for k, v in items], now=1030)
        == "bad signature"
    )
    assert s.check(path, [*items, ("format", "png")], now=1030) == "bad signature"
    assert (
        s.check(path, [i for i in items if i[0] != "sig"], now=1030)
        == "missing or repeated signature parameters"
    )
    assert s.remaining(items, now=1030) == 30


def test_ranges() -> None:
    assert parse_range(None, 100) is None
    assert parse_range("bytes=0-9", 100) == (0, 9)
    assert parse_range("bytes=90-", 100) == (90, 99)
    assert parse_range("bytes=-5", 100) == (95, 99)
    assert parse_range("bytes=50-500", 100) == (50, 99)
    assert parse_range("bytes=100-", 100) is False
    assert parse_range("bytes=0-1,5-6", 100) is None  # several ranges: the whole thing
    assert parse_range("items=0-1", 100) is None
    assert strong_etag(b"a", "x") != strong_etag(b"a", "y") and strong_etag(b"a").startswith('"')


def test_combine_moves_refs_apart() -> None:
    one = Q.delete_annotation_query(1, 7)
    two = Q.delete_annotation_query(2, 7)
    merged = combine([one, two])
    refs = [b["_ref"] for c in merged for b in c.values() if "_ref" in b]
    assert len(refs) == len(set(refs)) == 8
    last = merged[-1]["DeleteEntity"]["ref"]
    assert last == 5 and merged[len(one) + 1]["FindBoundingBox"]["is_connected_to"]["ref"] == 5


def test_image_of_task_and_times() -> None:
    assert image_of_task(
        {"meta": {"lensdb": {"uniqueid": "2.0.9", "width": 64, "height": 48}}}
    ) == ("2.0.9", (64.0, 48.0))
    assert image_of_task({"data": {"image": "http://h:1/media/images/2.0.3?exp=1&sig=x"}}) == (
        "2.0.3",
        None,
    )
    assert image_of_task({"data": {"image": "lensdb://h:5/image/2.0.4"}}) == ("2.0.4", None)
    assert image_of_task({"data": {"text": "hello"}}) == (None, None)
    assert ls_time("2026-11-25T21:09:52Z") == "2026-11-25T21:09:52.000000Z"
    assert ls_time("2026-11-25T22:09:52.5+01:00") == "2026-11-25T21:09:52.500000Z"
    assert parse_time({"_date": "2026-11-25T21:09:52.123456Z"}) == parse_time(
        "2026-11-25T21:09:52.123456+00:00"
    )
    assert instance_key("HTTP://LS.example:8080/") == "http://ls.example:8080"


def test_full_pull_id_ranges_cover_every_id_once() -> None:
    for lowest, highest, width, edge in [
        (1, 2000, 500, 100),
        (7, 7, 500, 100),
        (1, 150, 500, 100),
        (1, 250, 500, 100),
        (3, 12, 1, 100),
        (10, 1109, 900, 100),
    ]:
        ranges = list(id_ranges(lowest, highest, width, edge))
        ids = [i for first, last in ranges for i in range(first, last + 1)]
        assert ids == list(range(lowest, highest + 1))
        assert all(last - first + 1 <= width for first, last in ranges)
    # A small first range, so writing starts early; the last ones halve down, so each range's
    # writes overlap the next range's export and only the last 100 are written after it.
    sizes = [last - first + 1 for first, last in id_ranges(1, 2000, 900, 100)]
    assert sizes == [100, 400, 800, 400, 200, 100]
    sizes = [last - first + 1 for first, last in id_ranges(1, 10_000, 900, 100)]
    assert sizes[0] == 100 and sizes[-4:] == [800, 400, 200, 100] and max(sizes) == 900


def test_full_pull_reads_by_ranges_only_where_ids_are_dense() -> None:
    assert full_read_way((1, 2000, 2000)) == RANGES
    # Nearly every task annotated: snapshots by range (they read unannotated tasks too).
    assert full_read_way((1, 2000, 2000), annotated=0.95) == SNAPSHOTS
    assert full_read_way((1, 2000, 2000), annotated=0.5) == RANGES
    assert full_read_way((1, 100_000, 2000), annotated=1.0) == WHOLE
    assert annotated_share({"task_number": 200, "finished_task_number": 190}) == 0.95
    assert annotated_share({"task_number": 0, "finished_task_number": 0}) == 0.0
    assert annotated_share({"id": 3}) == 0.0  # counters missing (another edition): not snapshots
    assert full_read_way((1, 2000, 1000)) == RANGES  # another project's tasks interleaved
    assert full_read_way((1, 100_000, 2000)) == WHOLE  # sparse and small: one export
    assert full_read_way((1, 1_000_000, 30_000)) == LISTED  # sparse and big: listed ids
    assert full_read_way(None) == WHOLE  # no tasks
