"""Label Studio's public REST API, with errors that say what to do.

Accepts a legacy API token (`Authorization: Token ...`) or a personal access token (a JWT refresh
token, exchanged for short-lived access tokens and renewed on 401).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Generator, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import Any

import httpx

from lensdb.connector.transport import quick_ack_transport

WEBHOOK_ACTIONS = [
    "ANNOTATION_CREATED",
    "ANNOTATION_UPDATED",
    "ANNOTATIONS_DELETED",
    "TASKS_DELETED",
]


class LabelStudioError(Exception):
    """Label Studio could not be used; the message says what to do."""


class AddressTooLong(LabelStudioError):
    """Label Studio (or a proxy before it: nginx takes 8 KB by default) refused a long URL."""


def ls_time(value: str | datetime) -> str:
    """A time as Label Studio's Datetime filter needs it: UTC with fractional seconds (else HTTP 500)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LabelStudio:
    def __init__(self, url: str, token: str, timeout: float = 600.0) -> None:
        if not url:
            raise LabelStudioError(
                "Give Label Studio's address with --ls-url, e.g. http://localhost:8080"
            )
        if not token:
            raise LabelStudioError(
                "Give a Label Studio API token with --ls-token (Account & Settings > "
                "Personal Access Token, or a legacy token)"
            )
        self.url = url.rstrip("/")
        self.token = token.strip()
        self.personal = self.token.startswith("eyJ") and self.token.count(".") == 2
        self._access: str | None = None
        # Thread-safe (a locked pool); acknowledging answers at once unless a proxy from the
        # environment stands between (see `transport`).
        self.http = httpx.Client(
            base_url=self.url, timeout=timeout, transport=quick_ack_transport(self.url)
        )
        self._auth_lock = threading.Lock()  # the pull's threads share the access token
        # Label Studio's clock as the calling thread last saw it: a full pull reads tasks in one
        # thread while another asks for users, and each must see the time of its own answers.
        self._clock = threading.local()

    @property
    def server_time(self) -> datetime | None:
        """Label Studio's clock (Date header) at this thread's last answer."""
        return getattr(self._clock, "server_time", None)

    @property
    def listed_at(self) -> datetime | None:
        """Label Studio's clock when this thread last listed a page of tasks."""
        return getattr(self._clock, "listed_at", None)

    def close(self) -> None:
        self.http.close()

    # -- plumbing ----------------------------------------------------------------------------

    def _auth(self) -> str:
        if not self.personal:
            return f"Token {self.token}"
        with self._auth_lock:
            if self._access is None:
                r = self._send(
                    "POST", "/api/token/refresh/", json={"refresh": self.token}, auth=False
                )
                if r.status_code != 200 or "access" not in r.json():
                    raise LabelStudioError(
                        f"Label Studio at {self.url} refused the personal access token "
                        f"(HTTP {r.status_code}). Create a new one under Account & Settings."
                    )
                self._access = r.json()["access"]
            return f"Bearer {self._access}"

    def _expired(self, refused: httpx.Response) -> None:
        """The access token `refused` was sent with has expired (they live about 5 minutes): the
        next request gets a new one, unless another thread already did."""
        with self._auth_lock:
            if refused.request.headers.get("Authorization") == f"Bearer {self._access}":
                self._access = None

    def _send(self, method: str, path: str, auth: bool = True, **kw: Any) -> httpx.Response:
        headers = kw.pop("headers", {})
        if auth:
            headers["Authorization"] = self._auth()
        try:
            r = self.http.request(method, path, headers=headers, **kw)
            try:
                self._clock.server_time = parsedate_to_datetime(r.headers["date"])
            except (KeyError, TypeError, ValueError):
                pass
            return r
        except httpx.TimeoutException:
            raise LabelStudioError(
                f"Label Studio at {self.url} did not answer in time ({method} {path}); "
                "try again, or use smaller batches (--batch-size)"
            ) from None
        except httpx.HTTPError as exc:
            raise LabelStudioError(
                f"Label Studio at {self.url} does not answer ({exc}). "
                "Is it running, and is --ls-url right?"
            ) from None

    def request(self, method: str, path: str, what: str, **kw: Any) -> Any:
        r = self._send(method, path, **kw)
        if r.status_code == 401 and self.personal:
            self._expired(r)
            r = self._send(method, path, **kw)
        if r.status_code == 401:
            detail = _detail(r)
            hint = (
                " Legacy tokens are off by default in Label Studio 1.23: use a Personal Access Token, or "
                "enable legacy tokens (Organization > API Tokens settings)."
                if "legacy" in detail.lower()
                else " Check --ls-token (Account & Settings in Label Studio)."
            )
            raise LabelStudioError(
                f"Label Studio refused the token while trying to {what}: {detail}.{hint}"
            )
        if r.status_code == HTTPStatus.REQUEST_URI_TOO_LONG:
            raise AddressTooLong(f"Label Studio refused to {what}: the address is too long")
        if r.status_code == 403:
            raise LabelStudioError(
                f"Label Studio says the token's user may not {what}: {_detail(r)}"
            )
        if r.status_code == 404:
            raise LabelStudioError(
                f"Label Studio found nothing to {what} ({_detail(r)}): check the project id "
                "(the number in the project's URL) and that the token's user can see it"
            )
        if r.status_code >= 400:
            raise LabelStudioError(
                f"Label Studio refused to {what}: HTTP {r.status_code} {_detail(r)}"
            )
        return r.json() if r.content else None

    # -- API -----------------------------------------------------------------------------------

    def version(self) -> dict:
        return self.request("GET", "/api/version", "report its version", auth=False)

    def project(self, project_id: int) -> dict:
        return self.request("GET", f"/api/projects/{int(project_id)}", f"read project {project_id}")

    def create_project(self, title: str, label_config: str) -> dict:
        return self.request(
            "POST",
            "/api/projects/",
            "create a project",
            json={"title": title, "label_config": label_config},
        )

    def import_tasks(self, project_id: int, tasks: list[dict]) -> list[int]:
        """Create tasks (with predictions) in one synchronous import; their ids, in order."""
        body = self.request(
            "POST",
            f"/api/projects/{int(project_id)}/import?return_task_ids=true",
            f"import tasks into project {project_id}",
            json=tasks,
        )
        ids = body.get("task_ids") if isinstance(body, dict) else None
        if not isinstance(ids, list) or len(ids) != len(tasks):
            raise LabelStudioError(
                "Label Studio's import did not say which tasks it created "
                "(an asynchronous import in an Enterprise edition?)"
            )
        return [int(i) for i in ids]

    # Tasks with their annotations are read in two steps: the ids and times of one page, through the
    # Data Manager's task list with only those two fields (`include`), then those tasks through the
    # export API (`ids[]`). The task list with `fields=all` costs about 2.7x the export per task
    # (2.40 ms against 0.88 ms of Label Studio's CPU, bench/connector.py's Label Studio), and the id
    # page costs about a quarter of the export. Django refuses more than 1,000 query fields, so an
    # export asks for at most EXPORT_IDS tasks. (A full pull of a finished project reads export
    # snapshots instead: `SnapshotReader`.)
    EXPORT_IDS = 500
    EXPORT_RANGE = 900  # ids[] values in one export (Django's limit of 1,000 query fields)

    def changed_tasks(self, project_id: int, since: str | None, page_size: int) -> list[dict]:
        """The first `page_size` tasks updated after `since` (all tasks when None), oldest change first.

        Each task is as Label Studio's JSON export gives it (data, annotations, predictions, drafts),
        with the `updated_at` the page was ordered by.
        """
        items = []
        if since:
            items.append(
                {
                    "filter": "filter:tasks:updated_at",
                    "operator": "greater",
                    "type": "Datetime",
                    "value": ls_time(since),
                }
            )
        page, _ = self._task_times(project_id, items, "tasks:updated_at", page_size, 1)
        return self.export_tasks(project_id, page)

    def tasks_changed_at(
        self, project_id: int, at: str, page_size: int, page: int
    ) -> tuple[list[dict], int]:
        """One page of the tasks whose `updated_at` is exactly `at`, by id, and how many there are.

        A bulk update can give more tasks one timestamp than a page holds; ordered by time alone
        they cannot be paged through (ties come in no set order), ordered by id they can.
        """
        items = [
            {
                "filter": "filter:tasks:updated_at",
                "operator": "in",
                "type": "Datetime",
                "value": {"min": ls_time(at), "max": ls_time(at)},
            }
        ]
        times, total = self._task_times(project_id, items, "tasks:id", page_size, page)
        return self.export_tasks(project_id, times), total

    def task_id_bounds(self, project_id: int) -> tuple[int, int, int] | None:
        """(lowest task id, highest task id, number of tasks) of the project; None when it has none.

        Two one-task listings (about 20 ms each), against about a quarter of the export's time to list
        every id: enough for a full pull to export the project by id ranges (`export_id_range`).
        """
        lowest, total = self._task_times(project_id, [], "tasks:id", 1, 1)
        listed_at = self.listed_at  # the first listing's time: before anything else is read
        highest, _ = self._task_times(project_id, [], "-tasks:id", 1, 1)
        self._clock.listed_at = listed_at
        if not lowest or not highest:
            return None
        return int(lowest[0]["id"]), int(highest[0]["id"]), total

    def export_id_range(self, project_id: int, first: int, last: int) -> list[dict]:
        """The project's annotated tasks with ids from `first` to `last` (at most EXPORT_RANGE), by id.

        The export filters `ids[]` by project, so ids of other projects' tasks (or deleted ones) in
        the range are simply not there: no listing of the ids is needed first. Tasks without
        annotations are left out (Label Studio's export costs about 1 ms a task it serializes).
        """
        if last - first + 1 > self.EXPORT_RANGE:
            raise ValueError(f"at most {self.EXPORT_RANGE} ids per export, not {last - first + 1}")
        ids = list(range(int(first), int(last) + 1))
        return sorted(
            self._export_ids(project_id, ids, annotated_only=True), key=lambda t: int(t["id"])
        )

    def snapshot_reader(self, project_id: int) -> SnapshotReader:
        """A reader of the project's tasks by id range through export snapshots (see `SnapshotReader`)."""
        return SnapshotReader(self, project_id)

    def task_times_after(self, project_id: int, after_id: int, limit: int) -> list[dict]:
        """{"id", "updated_at"} of up to `limit` tasks with ids above `after_id`, by id.

        A full pull lists the project this way: one request per `limit` tasks, and a task deleted
        meanwhile cannot shift a page and hide another (as page numbers could).
        """
        items = [
            {
                "filter": "filter:tasks:id",
                "operator": "greater",
                "type": "Number",
                "value": after_id,
            }
        ]
        times, _ = self._task_times(project_id, items, "tasks:id", limit, 1)
        return times

    def export_tasks(self, project_id: int, times: list[dict]) -> list[dict]:
        """These tasks ({"id", "updated_at"} each) through the JSON export, in the order given.

        A task deleted in between is left out. Its `updated_at` stays the one given, so a save that
        lands between the two reads is read again by the next pull instead of skipped.
        """
        got: dict[int, dict] = {}
        for start in range(0, len(times), self.EXPORT_IDS):
            chunk = [int(t["id"]) for t in times[start : start + self.EXPORT_IDS]]
            got.update((int(t["id"]), t) for t in self._export_ids(project_id, chunk))
        out = []
        for t in times:
            task = got.get(int(t["id"]))
            if task is not None:
                out.append({**task, "updated_at": t["updated_at"]})
        return out

    def _export_ids(
        self, project_id: int, ids: list[int], annotated_only: bool = False
    ) -> list[dict]:
        """The tasks of the project among `ids`, through the JSON export (in no set order).

        An address too long for Label Studio or a proxy before it (500 six-digit ids make 8.5 KB;
        nginx takes 8 KB by default) is asked again in two halves.
        """
        try:
            body = self.request(
                "GET",
                f"/api/projects/{int(project_id)}/export",
                f"export {len(ids)} task(s) of project {project_id}",
                params={
                    "exportType": "JSON",
                    "download_all_tasks": "false" if annotated_only else "true",
                    "download_resources": "false",
                    "ids[]": ids,
                },
            )
        except AddressTooLong:
            if len(ids) < 2:
                raise
            half = len(ids) // 2
            return self._export_ids(project_id, ids[:half], annotated_only) + self._export_ids(
                project_id, ids[half:], annotated_only
            )
        return list(body or [])

    def _task_times(
        self, project_id: int, items: list[dict], ordering: str, page_size: int, page: int
    ) -> tuple[list[dict], int]:
        """One page of {"id", "updated_at"} of the tasks matching `items`, and how many match."""
        query = {"filters": {"conjunction": "and", "items": items}, "ordering": [ordering]}
        body = self.request(
            "GET",
            "/api/tasks/",
            f"list the tasks of project {project_id}",
            params={
                "project": int(project_id),
                "include": "id,updated_at",
                "page": int(page),
                "page_size": int(page_size),
                "query": json.dumps(query),
            },
        )
        # What a pull's cursor records as "read at": the listing's time, not a later export's.
        self._clock.listed_at = self.server_time
        if isinstance(body, dict):
            tasks = list(body.get("tasks") or [])
            return tasks, int(body.get("total", len(tasks)))
        return list(body or []), len(body or [])

    def users(self) -> dict[int, str]:
        """User id -> e-mail, when the token may list users (else empty)."""
        try:
            body = self.request("GET", "/api/users/", "list users")
        except LabelStudioError:
            return {}
        return {int(u["id"]): str(u.get("email") or "") for u in body or [] if "id" in u}

    def task(self, task_id: int) -> dict:
        return self.request("GET", f"/api/tasks/{int(task_id)}", f"read task {task_id}")

    def create_annotation(self, task_id: int, result: list[dict], **extra: Any) -> dict:
        return self.request(
            "POST",
            f"/api/tasks/{int(task_id)}/annotations/",
            f"annotate task {task_id}",
            json={"result": result, **extra},
        )

    def update_annotation(self, annotation_id: int, result: list[dict]) -> dict:
        return self.request(
            "PATCH",
            f"/api/annotations/{int(annotation_id)}/",
            f"update annotation {annotation_id}",
            json={"result": result},
        )

    def delete_annotation(self, annotation_id: int) -> None:
        self.request(
            "DELETE",
            f"/api/annotations/{int(annotation_id)}/",
            f"delete annotation {annotation_id}",
        )

    def webhooks(self, project_id: int) -> list[dict]:
        return (
            self.request(
                "GET", "/api/webhooks/", "list webhooks", params={"project": int(project_id)}
            )
            or []
        )

    def create_webhook(self, project_id: int, url: str, headers: dict[str, str]) -> dict:
        return self.request(
            "POST",
            "/api/webhooks/",
            f"register a webhook for project {project_id}",
            json={
                "project": int(project_id),
                "url": url,
                "send_payload": True,
                "send_for_all_actions": False,
                "is_active": True,
                "actions": WEBHOOK_ACTIONS,
                "headers": headers,
            },
        )

    def update_webhook(self, webhook_id: int, **fields: Any) -> dict:
        return self.request(
            "PATCH", f"/api/webhooks/{int(webhook_id)}/", "update a webhook", json=fields
        )

    def export_json(self, project_id: int) -> list[dict]:
        return self.request(
            "GET",
            f"/api/projects/{int(project_id)}/export",
            "export the project",
            params={"exportType": "JSON"},
        )


@dataclass(frozen=True)
class _Made:
    """A finished export snapshot: its API path, and what the pull was doing (for errors)."""

    path: str
    what: str


class SnapshotReader:
    """Tasks of one project by id range, through Label Studio's export snapshots.

    Label Studio's plain export (`/export?ids[]=`) builds a Project per task it serializes
    (`select_related('project')`: the label config parsed again each time, 23% of its CPU by
    py-spy); a snapshot (`POST /exports/`, then `/download`) does not, and costs it less a task:
    0.75-0.80 ms against 0.86-1.0 ms (bench/connector.py's Label Studio 1.23.2, 2,000 annotated
    tasks, its CPU read from /proc, best of 3, several runs; see `pull.full_read_way`). A
    snapshot cannot name ids, only a Data Manager view, so the reader keeps one view (a tab
    titled `VIEW_TITLE`) whose filter it moves from range to range, and deletes each snapshot
    once read and the view on `close`. A range costs four requests (move the view 14 ms, export
    28 ms, download 9 ms, delete 10 ms of Label Studio's CPU), so ranges are made wide. Every task
    in a range is read, annotated or not: the view could filter on Label Studio's annotation
    counters (`total_annotations > 0`, at no extra cost), but they leave out tasks with only
    skipped annotations, and a task whose counters lag would be taken for deleted. Selecting ids
    in the view (`selectedItems`) instead of a filter is not applied by the snapshot (it exported
    the whole project).
    """

    VIEW_TITLE = "lensdb pull (temporary)"
    # Drafts, predictions and annotators as ids: nothing of them is pulled.
    OPTIONS = {
        "drafts": {"only_id": True},
        "predictions": {"only_id": True},
        "annotations__completed_by": {"only_id": True},
        "include_annotation_history": False,
    }
    POLL = 0.05  # seconds between status checks of a snapshot made in the background (Redis)

    def __init__(self, ls: LabelStudio, project_id: int) -> None:
        self.ls = ls
        self.project_id = int(project_id)
        self.view: int | None = None

    def _view_body(self, first: int, last: int) -> dict:
        rule = {
            "filter": "filter:tasks:id",
            "operator": "in",
            "type": "Number",
            "value": {"min": int(first), "max": int(last)},
        }
        data = {"title": self.VIEW_TITLE, "filters": {"conjunction": "and", "items": [rule]}}
        return {"project": self.project_id, "data": data}

    def _move_view(self, first: int, last: int, what: str) -> None:
        """Point the reader's view (made on first use) at the ids `first` to `last`."""
        if self.view is None:
            body = self.ls.request(
                "POST", "/api/dm/views/", what, json=self._view_body(first, last)
            )
            self.view = int(body["id"])
        else:
            self.ls.request(
                "PATCH", f"/api/dm/views/{self.view}/", what, json=self._view_body(first, last)
            )

    def read(self, first: int, last: int) -> list[dict]:
        """The project's tasks with ids from `first` to `last`, by id."""
        return self._take(self._make_range(first, last, []))

    def read_ranges(self, ranges: Iterable[tuple[int, int]]) -> Generator[list[dict], None, None]:
        """The tasks of each (first id, last id) range in turn, by id.

        Label Studio makes a range's snapshot while the pull downloads the one before (Label
        Studio answers requests in threads), so it does not wait for the pull between two
        snapshots. A snapshot is deleted by the thread that makes the next but one, before it
        moves the view: a DELETE waits for a running export to end (Label Studio's SQLite
        database is locked meanwhile: 1.0-1.7 s for 2,000 tasks), and the pull must not wait with
        it. Stopped early, the snapshots made and the one being made are deleted.
        """
        pending = iter(ranges)
        first = next(pending, None)
        if first is None:
            return
        owned: list[_Made] = []  # made, not yet handed to the maker for deleting
        completed = False
        with ThreadPoolExecutor(1, thread_name_prefix="lensdb-snapshot") as maker:
            making: Future[_Made] | None = maker.submit(self._make_range, *first, [])
            try:
                while making is not None:
                    made = making.result()
                    owned.append(made)
                    following = next(pending, None)
                    making = None
                    if following is not None:
                        making = maker.submit(self._make_range, *following, owned[:-1])
                        owned = [made]
                    yield self._download(made)
                completed = True
            finally:
                if making is not None:
                    with contextlib.suppress(Exception):
                        owned.append(making.result())
                for snapshot in owned:
                    # Nothing else went wrong: a failed delete is the error to report.
                    self._forget(snapshot, quietly=not completed)

    def read_all(self) -> list[dict]:
        """Every task of the project (annotated or not) in one snapshot, by id: no view needed."""
        return self._take(self._make(None, f"read the tasks of project {self.project_id}"))

    def _make_range(self, first: int, last: int, spent: list[_Made]) -> _Made:
        """A snapshot of the ids `first` to `last`, made after deleting the `spent` ones."""
        for snapshot in spent:
            self._forget(snapshot)
        what = f"read tasks {first}-{last} of project {self.project_id}"
        self._move_view(first, last, what)
        return self._make({"view": self.view}, what)

    def _make(self, task_filter: dict | None, what: str) -> _Made:
        """A snapshot of the tasks `task_filter` selects, made (waited for when Label Studio
        makes it in the background); deleted again when it failed."""
        pid = self.project_id
        made = self.ls.request(
            "POST",
            f"/api/projects/{pid}/exports/",
            what,
            json={
                "title": self.VIEW_TITLE,
                "serialization_options": self.OPTIONS,
                # absent, not null: Label Studio refuses a null (HTTP 400)
                **({"task_filter_options": task_filter} if task_filter else {}),
            },
        )
        snapshot = _Made(f"/api/projects/{pid}/exports/{int(made['id'])}", what)
        try:
            status, deadline = made.get("status"), time.monotonic() + self.ls.http.timeout.read
            while status not in ("completed", "failed"):
                if time.monotonic() > deadline:
                    raise LabelStudioError(f"Label Studio's export snapshot did not finish: {what}")
                time.sleep(self.POLL)
                status = (self.ls.request("GET", snapshot.path, what) or {}).get("status")
            if status == "failed":
                raise LabelStudioError(f"Label Studio's export snapshot failed: {what}")
        except BaseException:
            self._forget(snapshot, quietly=True)
            raise
        return snapshot

    def _take(self, snapshot: _Made) -> list[dict]:
        """A made snapshot's tasks, by id; the snapshot is deleted once read, or when reading
        it failed."""
        try:
            tasks = self._download(snapshot)
        except BaseException:
            self._forget(snapshot, quietly=True)
            raise
        self._forget(snapshot)
        return tasks

    def _download(self, snapshot: _Made) -> list[dict]:
        """A made snapshot's tasks, by id."""
        tasks = self.ls.request("GET", f"{snapshot.path}/download", snapshot.what) or []
        try:
            return sorted(tasks, key=lambda t: int(t["id"]))
        except (TypeError, KeyError, ValueError):
            raise LabelStudioError(
                f"Label Studio's export snapshot is not a list of tasks: {snapshot.what}"
            ) from None

    def _forget(self, snapshot: _Made, quietly: bool = False) -> None:
        """Delete a snapshot; `quietly` when another error is already on its way (the first
        error is the one to report)."""
        with contextlib.suppress(*((LabelStudioError,) if quietly else ())):
            self.ls.request(
                "DELETE", snapshot.path, f"delete the export snapshot of project {self.project_id}"
            )

    def close(self) -> None:
        """Delete the view (and so the tab); a reader that never read made none."""
        if self.view is not None:
            view, self.view = self.view, None
            self.ls.request("DELETE", f"/api/dm/views/{view}/", "delete lensdb's temporary view")


def _detail(r: httpx.Response) -> str:
    try:
        body = r.json()
    except ValueError:
        return f"HTTP {r.status_code}"
    if isinstance(body, dict):
        for key in ("detail", "message", "error", "validation_errors"):
            if body.get(key):
                return str(body[key])[:500]
    return str(body)[:500]
