"""`pull`: Label Studio's annotations into lensdb, only what changed since the last pull by default.

Tasks are read oldest change first, a page at a time; each page becomes one lensdb transaction that
also moves the cursor, so a failure leaves lensdb as it was for that page and the next pull resumes
there. Annotations whose `updated_at` lensdb already has are skipped, so a pull with nothing changed
writes nothing.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from lensdb.client import Client, DatabaseError
from lensdb.connector import state
from lensdb.connector.lsclient import LabelStudio, ls_time
from lensdb.connector.push import ensure_indexes
from lensdb.labelstudio import annotations as A
from lensdb.labelstudio import queries as Q

# Changes committed slightly out of order (a save that stamped its time earlier but committed later)
# must not fall behind the cursor: each pull re-reads this much before it. Unchanged annotations are
# not written again, but re-reading costs Label Studio time, so the window is kept small.
OVERLAP = timedelta(milliseconds=500)
# When the last pull read Label Studio this long after the newest change it saw, no save stamped
# before that change can still have been in flight: no re-read is needed (the Date header has 1 s steps).
SETTLED = timedelta(seconds=3)


def _since(cursor: str | None, read_at: str | None) -> str | None:
    newest = A.parse_time(cursor)
    if newest is None:
        return None
    read = A.parse_time(read_at)
    if read is not None and read - newest > SETTLED:
        return ls_time(newest)
    return ls_time(newest - OVERLAP)


class PullError(Exception):
    """A pull stopped; the message says what happened and what to do."""


@dataclass
class PullReport:
    tasks: int = 0
    saved: int = 0
    deleted: int = 0
    unchanged: int = 0
    transactions: int = 0

    def summary(self, project_id: int) -> str:
        return (
            f"project {project_id}: read {self.tasks} changed task(s); wrote {self.saved} annotation(s), "
            f"deleted {self.deleted}, {self.unchanged} already up to date"
        )


def _stored(db: Client, project_id: int, task_ids: list[int]) -> dict[int, dict[str, Any]]:
    """task id -> {annotation id: stored updated_at} for annotations lensdb has for these tasks."""
    response, _ = db.query(
        [
            {
                "FindEntity": {
                    "with_class": Q.ANNOTATION_CLASS,
                    "constraints": {
                        **Q.annotation_scope(project_id),
                        "LS_task_id": ["in", task_ids],
                    },
                    "results": {"list": ["LS_id", "LS_task_id", "LS_updated_at"]},
                }
            }
        ]
    )
    out: dict[int, dict[str, Any]] = {}
    for e in Q.entities(response, "FindEntity"):
        out.setdefault(int(e["LS_task_id"]), {})[str(e["LS_id"])] = A.parse_time(
            e.get("LS_updated_at")
        )
    return out


def changes_for(
    tasks: list[dict],
    stored: dict[int, dict[str, Any]],
    project: dict,
    emails: dict[int, str],
    report: PullReport,
) -> list[list[dict]]:
    """The transactions that make lensdb match these tasks' annotations."""
    queries: list[list[dict]] = []
    for task in tasks:
        have = stored.get(int(task["id"]), {})
        current = {str(a["id"]): a for a in task.get("annotations") or []}
        for aid, ann in current.items():
            if (
                aid in have
                and have[aid] is not None
                and have[aid] == A.parse_time(ann.get("updated_at"))
            ):
                report.unchanged += 1
                continue
            queries.append(A.save_query(ann, task, project, emails, new=aid not in have))
            report.saved += 1
        for aid in have.keys() - current.keys():
            queries.append(A.delete_query(int(aid), int(project["id"])))
            report.deleted += 1
    return queries


def _apply(db: Client, queries: list[list[dict]], cursor_cmds: list[dict]) -> None:
    commands = A.combine([*queries, cursor_cmds])
    if commands:
        db.query(commands)


def pull(
    ls: LabelStudio, db: Client, project_id: int, full: bool = False, page_size: int = 500
) -> PullReport:
    report = PullReport()
    project = ls.project(project_id)  # fails early: wrong token, unknown project
    ensure_indexes(db)
    try:
        response, _ = db.query(state.cursor_query(ls.url, project_id))
    except DatabaseError as exc:
        raise PullError(f"lensdb refused the cursor lookup: {exc}") from None
    stored_cursor, read_at = state.cursor_of(response)
    since = None if full else _since(stored_cursor, read_at)
    emails = ls.users()
    seen: dict[int, str] = {}  # task id -> the updated_at it was processed at
    newest = stored_cursor
    started: datetime | None = None  # Label Studio's clock when a full pull listed its first tasks
    task_number = project.get("task_number")
    whole = full and task_number is not None and task_number <= WHOLE_EXPORT_TASKS
    pages = (
        _every_task(ls, project_id, page_size, seen, whole)
        if full
        else _changed(ls, project_id, since, page_size, seen)
    )
    for tasks, listed_at in read_ahead(pages):
        last = max((t["updated_at"] for t in tasks), key=A.parse_time)
        report.tasks += len(tasks)
        started = started or listed_at
        try:
            stored = _stored(db, project_id, [int(t["id"]) for t in tasks])
            queries = changes_for(tasks, stored, project, emails, report)
            newest = max(filter(None, [newest, last]), key=lambda v: A.parse_time(v))
            seen_at = listed_at.isoformat() if listed_at else None
            cursor_cmds = (
                state.set_cursor_commands(ls.url, project_id, ls_time(newest), seen_at, 1)
                if ls_time(newest) != stored_cursor and not full
                else []
            )
            if queries or cursor_cmds:
                _apply(db, queries, cursor_cmds)
                report.transactions += 1
                stored_cursor = ls_time(newest)
        except DatabaseError as exc:
            raise PullError(
                f"lensdb refused a batch of {len(tasks)} task(s) ({exc}); nothing of that batch was "
                "written and the cursor did not move. Fix the cause and pull again."
            ) from None
    if full:
        report.deleted += _delete_vanished(db, project_id, set(seen))
        _set_full_cursor(db, ls, project_id, started, newest, whole)
    return report


def _set_full_cursor(
    db: Client,
    ls: LabelStudio,
    project_id: int,
    started: datetime | None,
    newest: str | None,
    whole: bool,
) -> None:
    """After a full pull: the next pull reads what changed since this one read Label Studio.

    Read in one export (`whole`), the project was read at once, and the newest change seen is a
    cursor as an incremental pull's is. Read in pages by id, it was not: the newest change seen
    says nothing about tasks read earlier (one changed after its page was read can be older than
    a change seen later), so the pull's start is the cursor (Label Studio's Date header, whole
    seconds: at most one second early).
    """
    cursor = newest if whole else None
    cursor = cursor or (ls_time(started - timedelta(seconds=1)) if started else newest)
    if cursor is None:
        return
    if newest is not None and A.parse_time(newest) < A.parse_time(cursor):
        cursor = newest  # nothing changed since the newest change seen: start from there
    seen_at = started.isoformat() if started else None
    db.query(state.set_cursor_commands(ls.url, project_id, cursor, seen_at, 1))


_END = object()
T = TypeVar("T")


def read_ahead(pages: Iterable[T], depth: int = 2) -> Iterator[T]:
    """The pages of `pages`, read by a thread up to `depth` pages ahead of the consumer.

    Label Studio exports the next page while lensdb writes this one: they are two processes, so
    the two waits overlap instead of adding up (a full pull of 10,000 tasks spent about a third of
    its time in lensdb's writes). An error in the reader is raised in the consumer; a consumer that
    stops early (an error of its own) stops the reader after the page it is reading.
    """
    box: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                box.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for page in pages:
                if not put(("page", page)):
                    return
            put(("end", _END))
        except BaseException as exc:  # handed to the consumer, which raises it
            put(("error", exc))

    reader = threading.Thread(target=read, name="lensdb-pull-reader", daemon=True)
    reader.start()
    try:
        while True:
            kind, item = box.get()
            if kind == "end":
                return
            if kind == "error":
                raise item  # type: ignore[misc]
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        reader.join(timeout=60)


# Up to this many tasks, a full pull reads the project in one export: exactly what Label Studio's own
# export costs (about 2 ms a task here), where listing ids and exporting them page by page cost
# twice that (bench/connector.py, 2,000 tasks). Larger projects are read in pages, so memory
# stays bounded (the export holds about 1.1 KB a task).
WHOLE_EXPORT_TASKS = 20_000
LIST_PAGES = (
    4  # a full pull lists the ids of this many pages per request (the cost is mostly fixed)
)


def _every_task(
    ls: LabelStudio,
    project_id: int,
    page_size: int,
    seen: dict[int, str],
    whole: bool = False,
) -> Iterator[tuple[list[dict], datetime | None]]:
    """Every task of the project, by id, in pages of `page_size`, with Label Studio's clock before
    they were read: one export for a project of up to WHOLE_EXPORT_TASKS, else ids listed after
    the last one seen and exported a page at a time."""
    if whole:
        before = ls.server_time  # the answer to the request just before: earlier than the export
        tasks = sorted(ls.export_all(project_id) or [], key=lambda t: int(t["id"]))
        for start in range(0, len(tasks), page_size):
            page = tasks[start : start + page_size]
            seen.update((int(t["id"]), t["updated_at"]) for t in page)
            yield page, before
        return
    after, listing = 0, page_size * LIST_PAGES
    while True:
        times = ls.task_times_after(project_id, after, listing)
        listed_at = ls.listed_at
        for start in range(0, len(times), page_size):
            tasks = ls.export_tasks(project_id, times[start : start + page_size])
            seen.update((int(t["id"]), t["updated_at"]) for t in tasks)
            if tasks:
                yield tasks, listed_at
        if len(times) < listing:
            return
        after = int(times[-1]["id"])


def _changed(
    ls: LabelStudio, project_id: int, since: str | None, page_size: int, seen: dict[int, str]
) -> Iterator[tuple[list[dict], datetime | None]]:
    """Pages of tasks changed after `since`, oldest change first, each task once per change, with
    Label Studio's clock when the page was listed."""

    def fresh(tasks: list[dict]) -> list[dict]:
        new = [t for t in tasks if seen.get(int(t["id"])) != t["updated_at"]]
        seen.update((int(t["id"]), t["updated_at"]) for t in new)
        return new

    while True:
        page = ls.changed_tasks(project_id, since, page_size)
        if not page:
            return
        last = page[-1]["updated_at"]
        new = fresh(page)
        if new:
            yield new, ls.listed_at
            # Tasks sharing the page's last timestamp may continue on the next page: read them again there.
            since = ls_time(A.parse_time(last) - timedelta(microseconds=1))
            continue
        if len(page) < page_size:
            return
        # A whole page of one instant, all seen: a bulk update gave more tasks that timestamp than a
        # page holds. Read that instant's tasks by id, then go on after it.
        number, pages = 1, 1
        while number <= pages:
            group, total = ls.tasks_changed_at(project_id, last, page_size, number)
            pages = -(-total // page_size)
            new = fresh(group)
            if new:
                yield new, ls.listed_at
            number += 1
        since = ls_time(last)


def _delete_vanished(db: Client, project_id: int, alive: set[int]) -> int:
    """Remove annotations of tasks Label Studio no longer has (deleted tasks send no annotation event)."""
    response, _ = db.query(A.task_annotations_query(project_id, "not in", alive))
    gone = A.annotation_ids(response)
    if gone:
        db.query(A.combine(A.delete_query(a, project_id) for a in gone))
    return len(gone)
