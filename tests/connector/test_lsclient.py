"""The Label Studio client against a real HTTP server that, like nginx in front of Label Studio,
refuses long addresses (414): a full pull's export of an id range halves until it fits; and one
that makes export snapshots in the background (with Redis), as the snapshot reader must wait for."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from lensdb.connector.lsclient import AddressTooLong, LabelStudio, LabelStudioError

LIMIT = 8192  # nginx's default large_client_header_buffers size
TASKS = {i: {"id": i, "annotations": [{"id": 10 * i}], "updated_at": "2026-11-27T10:00:00Z"}
         for i in range(100_000, 101_500, 3)}  # fmt: skip


class _Json(BaseHTTPRequestHandler):
    """A handler answering JSON, quietly."""

    def _answer(self, body: object, status: int = HTTPStatus.OK) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


class _Export(_Json):
    seen: list[int] = []  # lengths of the addresses answered
    limit = LIMIT

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if len(self.path) > self.limit:
            self.send_response(HTTPStatus.REQUEST_URI_TOO_LONG)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        _Export.seen.append(len(self.path))
        ids = [int(i) for i in parse_qs(urlsplit(self.path).query).get("ids[]", [])]
        self._answer([TASKS[i] for i in ids if i in TASKS])


@pytest.fixture
def proxy_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Export)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_an_id_range_too_long_for_the_proxy_is_exported_in_halves(proxy_url: str) -> None:
    ls = LabelStudio(proxy_url, "token")
    _Export.seen.clear()
    last = 100_000 + ls.EXPORT_RANGE - 1
    tasks = ls.export_id_range(7, 100_000, last)
    assert [t["id"] for t in tasks] == sorted(i for i in TASKS if i <= last)
    assert len(_Export.seen) >= 2 and max(_Export.seen) <= LIMIT
    _Export.seen.clear()
    assert [t["id"] for t in ls.export_id_range(7, 100_000, 100_099)] == list(
        range(100_000, 100_100, 3)
    )
    assert len(_Export.seen) == 1  # short enough: one request
    # The same for a page of listed ids (500 six-digit ids: 8.5 KB).
    _Export.seen.clear()
    times = [{"id": i, "updated_at": "2026-11-27T11:00:00Z"} for i in sorted(TASKS)[:500]]
    got = ls.export_tasks(7, times)
    assert [t["id"] for t in got] == sorted(TASKS)[:500]
    assert {t["updated_at"] for t in got} == {"2026-11-27T11:00:00Z"}
    assert len(_Export.seen) >= 2 and max(_Export.seen) <= LIMIT


def test_a_single_id_too_long_is_an_error_not_a_loop(proxy_url: str, monkeypatch) -> None:
    monkeypatch.setattr(_Export, "limit", 10)
    with pytest.raises(AddressTooLong):
        LabelStudio(proxy_url, "token").export_id_range(7, 100_000, 100_003)


class _Snapshots(_Json):
    """Label Studio with a background worker (Redis): a snapshot is made after its POST returns."""

    polls_left = 0
    outcome = "completed"
    made = 10  # the last export's id
    download: object = []  # a snapshot's body
    undeletable: set[str] = set()  # paths whose DELETE fails
    log: list[str] = []

    def _body(self) -> dict:
        return json.loads(self.rfile.read(int(self.headers["Content-Length"])))

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self._body()
        _Snapshots.log.append(f"POST {self.path}")
        if self.path == "/api/dm/views/":
            self._answer({"id": 3, **body})
        else:
            _Snapshots.made += 1
            self._answer({"id": _Snapshots.made, "status": "created"}, HTTPStatus.CREATED)

    def do_PATCH(self) -> None:  # noqa: N802 - http.server's name
        body = self._body()
        _Snapshots.log.append(f"PATCH {self.path}")  # before answering: the log keeps the order
        self._answer({"id": 3, **body})

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        _Snapshots.log.append(f"GET {self.path}")
        if self.path.endswith("/download"):
            self._answer(_Snapshots.download)
        elif _Snapshots.polls_left > 0:
            _Snapshots.polls_left -= 1
            self._answer({"id": _Snapshots.made, "status": "in_progress"})
        else:
            self._answer({"id": _Snapshots.made, "status": _Snapshots.outcome})

    def do_DELETE(self) -> None:  # noqa: N802 - http.server's name
        _Snapshots.log.append(f"DELETE {self.path}")
        if self.path in _Snapshots.undeletable:
            self._answer({"detail": "storage unavailable"}, HTTPStatus.INTERNAL_SERVER_ERROR)
            return
        self.send_response(HTTPStatus.NO_CONTENT)
        self.end_headers()


@pytest.fixture
def snapshots_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Snapshots)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Snapshots.log, _Snapshots.polls_left, _Snapshots.outcome = [], 2, "completed"
    _Snapshots.made = 10
    _Snapshots.download = [TASKS[100_003], TASKS[100_000]]
    _Snapshots.undeletable = set()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_snapshot_made_in_the_background_is_waited_for(snapshots_url: str) -> None:
    reader = LabelStudio(snapshots_url, "token").snapshot_reader(7)
    assert [t["id"] for t in reader.read(100_000, 100_005)] == [100_000, 100_003]
    assert [t["id"] for t in reader.read(100_006, 100_009)] == [100_000, 100_003]
    reader.close()
    export, following = "/api/projects/7/exports/11", "/api/projects/7/exports/12"
    assert _Snapshots.log == [
        "POST /api/dm/views/",
        "POST /api/projects/7/exports/",
        f"GET {export}",  # in progress
        f"GET {export}",  # in progress
        f"GET {export}",  # completed
        f"GET {export}/download",
        f"DELETE {export}",
        "PATCH /api/dm/views/3/",  # the view moves to the next range
        "POST /api/projects/7/exports/",
        f"GET {following}",
        f"GET {following}/download",
        f"DELETE {following}",
        "DELETE /api/dm/views/3/",
    ]


def _exports(verb: str) -> list[str]:
    prefix = f"{verb} /api/projects/7/exports/"
    return [e for e in _Snapshots.log if e.startswith(prefix) and e[len(prefix) :].isdigit()]


def test_ranges_are_read_while_the_next_snapshot_is_made(snapshots_url: str) -> None:
    """`read_ranges` makes range k+1's snapshot while range k is downloaded; a snapshot is deleted
    just before the view moves again (a DELETE would wait for a running export), and every
    snapshot is deleted in the end."""
    _Snapshots.polls_left = 0
    reader = LabelStudio(snapshots_url, "token").snapshot_reader(7)
    got = list(reader.read_ranges([(100_000, 100_001), (100_002, 100_003), (100_004, 100_005)]))
    reader.close()
    assert [[t["id"] for t in tasks] for tasks in got] == [[100_000, 100_003]] * 3
    made = [f"/api/projects/7/exports/{n}" for n in (11, 12, 13)]
    assert sorted(_exports("DELETE")) == [f"DELETE {m}" for m in made]
    log = _Snapshots.log
    # Snapshot 11 goes once snapshot 12 is made, before the view moves to the third range.
    moves = [i for i, e in enumerate(log) if e == "PATCH /api/dm/views/3/"]
    assert len(moves) == 2 and log.index(f"DELETE {made[0]}") < moves[1]
    assert log[-1] == "DELETE /api/dm/views/3/"


def test_ranges_stopped_early_leave_no_snapshot(snapshots_url: str) -> None:
    _Snapshots.polls_left = 0
    reader = LabelStudio(snapshots_url, "token").snapshot_reader(7)
    ranges = reader.read_ranges([(1, 2), (3, 4), (5, 6), (7, 8)])
    next(ranges)  # the first range read; the second one's snapshot is being made
    ranges.close()
    reader.close()
    assert _Snapshots.log.count("POST /api/projects/7/exports/") == 2
    assert sorted(_exports("DELETE")) == [f"DELETE /api/projects/7/exports/{n}" for n in (11, 12)]
    assert _Snapshots.log[-1] == "DELETE /api/dm/views/3/"


def test_a_failed_snapshot_is_an_error_and_is_deleted(snapshots_url: str) -> None:
    _Snapshots.outcome = "failed"
    reader = LabelStudio(snapshots_url, "token").snapshot_reader(7)
    with pytest.raises(LabelStudioError, match="snapshot failed"):
        reader.read(100_000, 100_005)
    reader.close()
    assert _Snapshots.log[-2:] == ["DELETE /api/projects/7/exports/11", "DELETE /api/dm/views/3/"]


def test_a_snapshot_that_is_not_a_task_list_is_an_error_and_is_deleted(snapshots_url: str) -> None:
    _Snapshots.polls_left, _Snapshots.download = 0, [{"no id": 1}]
    reader = LabelStudio(snapshots_url, "token").snapshot_reader(7)
    with pytest.raises(LabelStudioError, match="not a list of tasks"):
        list(reader.read_ranges([(1, 2), (3, 4)]))
    with pytest.raises(LabelStudioError, match="not a list of tasks"):
        reader.read(5, 6)
    reader.close()
    made = [f"DELETE /api/projects/7/exports/{n}" for n in range(11, 11 + _Snapshots.made - 10)]
    assert sorted(_exports("DELETE")) == made


def test_a_snapshot_that_cannot_be_deleted_is_an_error(snapshots_url: str) -> None:
    """Once every range is read, a snapshot left behind is reported, not passed over."""
    _Snapshots.polls_left = 0
    _Snapshots.undeletable = {"/api/projects/7/exports/12"}
    reader = LabelStudio(snapshots_url, "token").snapshot_reader(7)
    with pytest.raises(LabelStudioError, match="storage unavailable"):
        list(reader.read_ranges([(1, 2), (3, 4)]))
    reader.close()


class _Proxy(_Json):
    """A forward proxy: it is asked for absolute URLs, and answers them itself."""

    asked: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        _Proxy.asked.append(self.path)
        self._answer({"release": "proxied"})


def test_a_proxy_named_in_the_environment_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """httpx follows HTTP_PROXY only with a transport of its own: behind a proxy the client gives
    up acknowledging at once (`connector.transport`) rather than the proxy."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Proxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Proxy.asked = []
    try:
        for name in ("HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.server_address[1]}")
        ls = LabelStudio("http://label-studio.invalid:8080", "token")
        assert ls.version() == {"release": "proxied"}
        assert _Proxy.asked == ["http://label-studio.invalid:8080/api/version"]
        ls.close()
    finally:
        server.shutdown()
        server.server_close()
