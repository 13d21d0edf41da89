"""`pull`: Label Studio's annotations into lensdb, only what changed since the last pull by default.

Tasks are read oldest change first, a page at a time; each page becomes one lensdb transaction that
also moves the cursor, so a failure leaves lensdb as it was for that page and the next pull resumes
there. Annotations whose `updated_at` lensdb already has are skipped, so a pull with nothing changed
writes nothing. A full pull (`full=True`) reads every annotated task by id instead, Label Studio
exporting while lensdb writes (see `full_read_way`: a nearly fully annotated project through export
snapshots, which cost Label Studio ~12% less CPU a task than its plain export), and removes what
lensdb holds for the others.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

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


@dataclass(frozen=True)
class Page:
    """Tasks read from Label Studio, with its clock from before they were read. `whole`: the read
    that gave them was one consistent read of the project (see `_set_full_cursor`)."""

    tasks: list[dict]
    listed_at: datetime | None
    whole: bool = False


def pull(
    ls: LabelStudio, db: Client, project_id: int, full: bool = False, page_size: int = 500
) -> PullReport:
    report = PullReport()
    project = ls.project(project_id)  # fails early: wrong token, unknown project
    seen: dict[int, str] = {}  # task id -> the updated_at it was processed at
    # A full pull needs nothing from lensdb to start reading: Label Studio starts exporting now.
    reader = ReadAhead(_every_task(ls, project, page_size, seen)) if full else None
    try:
        ensure_indexes(db)
        try:
            response, _ = db.query(state.cursor_query(ls.url, project_id))
        except DatabaseError as exc:
            raise PullError(f"lensdb refused the cursor lookup: {exc}") from None
        stored_cursor, read_at = state.cursor_of(response)
        # A full pull into a lensdb holding nothing of the project need not ask, page by page,
        # which annotations it holds (a round trip before each write; a save racing the pull is
        # still neither duplicated nor overwritten: see `queries.save_annotation_query`'s `new`).
        holds = not full or bool(
            A.annotation_ids(db.query(A.first_annotation_query(project_id))[0])
        )
        emails = ls.users()
        if reader is None:
            since = _since(stored_cursor, read_at)
            reader = ReadAhead(_changed(ls, project_id, since, page_size, seen))
        newest = stored_cursor
        started: datetime | None = None  # Label Studio's clock when a full pull started reading
        whole = False
        for page in reader:
            started = started or page.listed_at
            whole = page.whole
            tasks, listed_at = page.tasks, page.listed_at
            if not tasks:
                continue
            last = max((t["updated_at"] for t in tasks), key=A.parse_time)
            report.tasks += len(tasks)
            try:
                stored = _stored(db, project_id, [int(t["id"]) for t in tasks]) if holds else {}
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
                    f"lensdb refused a batch of {len(tasks)} task(s) ({exc}); nothing of that batch "
                    "was written and the cursor did not move. Fix the cause and pull again."
                ) from None
    finally:
        if reader is not None:
            reader.close()
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

    Read in one export snapshot (`whole`), the project was read at once, and the newest change
    seen is a cursor as an incremental pull's is. Read in pages by id, it was not: the newest
    change seen says nothing about tasks read earlier (one changed after its page was read can be
    older than a change seen later), so the pull's start is the cursor (Label Studio's Date
    header, whole seconds: at most one second early).
    """
    cursor = newest if whole else None
    cursor = cursor or (ls_time(started - timedelta(seconds=1)) if started else newest)
    if cursor is None:
        return
    if newest is not None and A.parse_time(newest) < A.parse_time(cursor):
        cursor = newest  # nothing changed since the newest change seen: start from there
    seen_at = started.isoformat() if started else None
    db.query(state.set_cursor_commands(ls.url, project_id, cursor, seen_at, 1))


T = TypeVar("T")


class ReadAhead(Generic[T]):
    """The items of `pages`, read by a thread up to `depth` items ahead of the consumer.

    Label Studio exports the next page while lensdb writes this one: they are two processes, so
    the two waits overlap instead of adding up (a full pull of 10,000 tasks spent about a third of
    its time in lensdb's writes). Reading starts when the object is made, so a full pull's first
    export also overlaps the pull's own start (index check, cursor, users). An error in the reader
    is raised in the consumer; `close` (or leaving the `with` block) stops the reader after the
    item it is reading.
    """

    def __init__(self, pages: Iterable[T], depth: int = 4) -> None:
        self._box: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._pages = pages
        self._reader = threading.Thread(target=self._read, name="lensdb-pull-reader", daemon=True)
        self._reader.start()

    def _put(self, item: tuple[str, Any]) -> bool:
        while not self._stop.is_set():
            try:
                self._box.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _read(self) -> None:
        pages = iter(self._pages)
        try:
            for page in pages:
                if not self._put(("page", page)):
                    return
            self._put(("end", None))
        except BaseException as exc:  # handed to the consumer, which raises it
            self._put(("error", exc))
        finally:
            # Stopped early, a generator's `finally` runs now, in this thread, not whenever it is
            # collected (a full pull's reader deletes its temporary Label Studio view there). What
            # goes wrong then is not what stopped the pull: it is left out.
            with contextlib.suppress(Exception):
                getattr(pages, "close", lambda: None)()

    def __iter__(self) -> Iterator[T]:
        while True:
            kind, item = self._box.get()
            if kind == "end":
                return
            if kind == "error":
                raise item
            yield item

    def close(self) -> None:
        self._stop.set()
        self._reader.join(timeout=60)

    def __enter__(self) -> ReadAhead[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# How a full pull reads a project. Label Studio answers in one process, so the pull's wall time is
# at least the CPU Label Studio spends answering it: a read path can only beat its own export by
# costing it less a task. Its CPU per task (bench/connector.py's Label Studio 1.23.2, 2,000
# annotated tasks, /proc, best of 3, several runs):
#   plain export (`/export`, the baseline)             0.86-0.91 ms
#   plain export by `ids[]`, 900 / 500 / 200 ids       0.91 / 0.88-1.00 / 0.94 ms (+ ~20 ms a request)
#   export snapshot (`/exports/`, then `/download`)    0.75-0.80 ms (unannotated task: 0.50 ms)
#   project task list (`/api/projects/{id}/tasks/`)    1.78 ms
#   Data Manager list (`/api/tasks/?fields=all`)       2.40 ms
# The plain export builds a Project (and parses its label config) for every task it serializes
# (py-spy: 23% of its CPU); a snapshot does not, but encodes in pure Python and reads predictions
# task by task, so it only saves ~12%. Fixed costs: a snapshot range is four requests, ~61 ms
# together (move the view 14, export 28, download 9, delete 10); an `ids[]` export ~20 ms. With
# either, lensdb's writes (about 0.3 ms a task, in lensdb and in the pull) start once a piece has
# arrived. So the project is read in id ranges, small first and last ones: lensdb writes each while
# Label Studio exports the next (`ReadAhead`), and only the last range's writes come after Label
# Studio's work. The overlap pays when a core is free; on a machine busier than its cores the wall
# time follows the CPU all three processes need (bench/connector.py reports both). Snapshots are
# also made one after another with no wait between them: Label Studio makes a range's snapshot
# while the pull downloads the one before (`SnapshotReader.read_ranges`), and every answer is
# acknowledged at once (`transport`: each request waited ~45 ms before). Quiet wall time, 10,000
# tasks: 0.97-1.05x the export's before both, 0.92-1.01x with the first, 0.89-0.91x (three runs)
# with both. Label Studio's CPU 7.8-9.1 s against 9.1-10.0 s for its own export (0.85-0.93x; by
# `ids[]` ranges it was 10.1-10.4 s, 1.08x); lensdb and the pull need another 2.9-3.3 s of CPU.
# 2,000 tasks: Label Studio's CPU about equal to its export's (the ranges' fixed costs), 1.19x.
SNAPSHOTS = "snapshots"  # export snapshots by id ranges: ids dense, nearly every task annotated
RANGES = "ranges"  # export by id ranges: ids dense enough (most projects: ids come in order)
WHOLE = "whole"  # one export snapshot (no view): sparse ids, up to WHOLE_EXPORT_TASKS tasks
LISTED = "listed"  # list the ids, export them a page at a time: sparse ids, a large project
# Ranges are used when at least this share of the ids between the project's lowest and highest
# task id are its own; below it, ranges would cost more requests than tasks (another project's
# tasks interleaved, many deleted).
DENSE_IDS = 0.5
# Ids in the first range and in the last one (see `id_ranges`; the others hold up to as many as an
# export may name): lensdb starts writing about 0.1 s into the pull instead of after a 900-task
# export, and what it writes after Label Studio's last export is 100 tasks, not up to 900.
EDGE_RANGE = 100
# Up to this many tasks, a sparse project is read in one export snapshot: a little less than Label
# Studio's own export costs (see above), where listing ids and exporting them page by page costs
# twice that (bench/connector.py, 2,000 tasks). Larger ones are read in pages, so memory stays
# bounded (about 1.1 KB a task).
WHOLE_EXPORT_TASKS = 20_000
# Snapshots (`lsclient.SnapshotReader`) are used when at least this share of the tasks is finished
# (`annotated_share`): they read the tasks without annotations too (0.50 ms each), which the plain
# export by id leaves out. Break-even is near 0.8 (0.77 a + 0.50 (1 - a) = 0.9 a); 0.9 leaves room
# for the snapshots' fixed costs.
SNAPSHOT_ANNOTATED = 0.9
# Ids in a snapshot's range, and in its first and last one (`id_ranges`). A range costs ~61 ms of
# Label Studio's CPU, so ranges are wider than the plain export's; halving from 2 e to e saves
# writing e tasks (0.3 ms each) after Label Studio's last answer, worth a range from e = 200 up.
# 10,000 tasks: 8 ranges (250, 4 x 2000, 1000, 500, 250), about 0.5 s of Label Studio's 8.5 s.
SNAPSHOT_RANGE = 2000
SNAPSHOT_EDGE = 250
LIST_PAGES = (
    4  # a listed read lists the ids of this many pages per request (the cost is mostly fixed)
)


def full_read_way(bounds: tuple[int, int, int] | None, annotated: float = 0.0) -> str:
    """How a full pull reads a project of these (lowest id, highest id, number of tasks), with
    this share of its tasks annotated (see `annotated_share`)."""
    if bounds is None:
        return WHOLE
    lowest, highest, total = bounds
    if total >= DENSE_IDS * (highest - lowest + 1):
        return SNAPSHOTS if annotated >= SNAPSHOT_ANNOTATED else RANGES
    return WHOLE if total <= WHOLE_EXPORT_TASKS else LISTED


def annotated_share(project: dict) -> float:
    """The share of the project's tasks Label Studio counts as finished (`finished_task_number`,
    its own counter: it may lag, so it only chooses how to read, never what is read)."""
    try:
        total = int(project.get("task_number") or 0)
        finished = int(project.get("finished_task_number") or 0)
    except (TypeError, ValueError):
        return 0.0
    return finished / total if total > 0 else 0.0


def id_ranges(lowest: int, highest: int, width: int, edge: int) -> Iterator[tuple[int, int]]:
    """(first id, last id) ranges covering lowest..highest, at most `width` ids each.

    The first range is `edge` ids, so lensdb starts writing early. The last ones halve down to
    `edge` (..., 4 edge, 2 edge, edge): lensdb writes a range while Label Studio exports the next,
    and writing costs about a third of exporting, so each range's writes hide behind the export of
    the half-size one after it, and only the last `edge` tasks are written after Label Studio's
    last export (a 900-id range last left about 0.6 s of writes after it: bench/connector.py).
    """
    edge = max(1, min(edge, width))
    tail: list[int] = []  # sizes of the last ranges, from the end
    size, left = edge, highest - lowest + 1 - edge
    while left > 0 and size < width:
        tail.append(min(size, left))
        left -= tail[-1]
        size *= 2
    sizes = [min(edge, highest - lowest + 1)]
    sizes += [min(width, left - done) for done in range(0, max(left, 0), width)]
    sizes += reversed(tail)
    first = lowest
    for size in sizes:
        yield first, first + size - 1
        first += size


def _every_task(
    ls: LabelStudio, project: dict, page_size: int, seen: dict[int, str]
) -> Iterator[Page]:
    """Every annotated task of the project, by id, in pages of up to `page_size`, each with Label
    Studio's clock before the read began (see `full_read_way`); one page at least, maybe empty."""
    project_id = int(project["id"])
    bounds = ls.task_id_bounds(project_id)
    started = ls.listed_at  # task_id_bounds' time: before any task was read
    way = full_read_way(bounds, annotated_share(project))
    if way == SNAPSHOTS and bounds is not None:
        lowest, highest, _ = bounds
        yield Page([], started)
        reader = ls.snapshot_reader(project_id)
        ranges = reader.read_ranges(id_ranges(lowest, highest, SNAPSHOT_RANGE, SNAPSHOT_EDGE))
        try:
            for tasks in ranges:
                seen.update((int(t["id"]), t["updated_at"]) for t in tasks)
                for start in range(0, len(tasks), page_size):
                    yield Page(tasks[start : start + page_size], started)
        finally:
            ranges.close()  # first: the snapshot being made needs the view
            reader.close()
        return
    if way == RANGES and bounds is not None:
        lowest, highest, _ = bounds
        yield Page([], started)
        for first, last in id_ranges(lowest, highest, ls.EXPORT_RANGE, EDGE_RANGE):
            tasks = ls.export_id_range(project_id, first, last)
            seen.update((int(t["id"]), t["updated_at"]) for t in tasks)
            for start in range(0, len(tasks), page_size):
                yield Page(tasks[start : start + page_size], started)
        return
    if way == WHOLE:
        tasks = ls.snapshot_reader(project_id).read_all()
        yield Page([], started, whole=True)
        for start in range(0, len(tasks), page_size):
            page = tasks[start : start + page_size]
            seen.update((int(t["id"]), t["updated_at"]) for t in page)
            yield Page(page, started, whole=True)
        return
    after, listing = 0, page_size * LIST_PAGES
    while True:
        times = ls.task_times_after(project_id, after, listing)
        listed_at = ls.listed_at
        for start in range(0, len(times), page_size):
            tasks = ls.export_tasks(project_id, times[start : start + page_size])
            seen.update((int(t["id"]), t["updated_at"]) for t in tasks)
            yield Page(tasks, listed_at)
        if len(times) < listing:
            return
        after = int(times[-1]["id"])


def _changed(
    ls: LabelStudio, project_id: int, since: str | None, page_size: int, seen: dict[int, str]
) -> Iterator[Page]:
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
            yield Page(new, ls.listed_at)
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
                yield Page(new, ls.listed_at)
            number += 1
        since = ls_time(last)


def _delete_vanished(db: Client, project_id: int, alive: set[int]) -> int:
    """Remove annotations of tasks Label Studio no longer has (deleted tasks send no annotation event)."""
    response, _ = db.query(A.task_annotations_query(project_id, "not in", alive))
    gone = A.annotation_ids(response)
    if gone:
        db.query(A.combine(A.delete_query(a, project_id) for a in gone))
    return len(gone)
