"""`push`: images selected in lensdb become Label Studio tasks (signed image links, regions as predictions).

Per batch: the gateway builds the tasks (it alone can sign links), Label Studio imports them, and lensdb
records image -> task in one transaction. If that last write fails the batch's pairs are kept in a local
file and recorded by the next push, so no image is ever sent twice.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lensdb.client import Client, DatabaseError, HttpClient
from lensdb.connector import state
from lensdb.connector.lsclient import LabelStudio
from lensdb.index.choose import Choice, choose
from lensdb.labelstudio import queries as Q
from lensdb.settings import Settings


class PushError(Exception):
    """A push stopped; the message says what happened and what to do."""


@dataclass
class PushOptions:
    project_id: int
    constraints: dict | None = None
    predictions: bool = False
    pred_constraints: dict | None = None
    properties: list[str] = field(default_factory=list)
    limit: int | None = None
    batch_size: int = 500
    ttl: int = 30 * 86400
    public_url: str | None = None
    image_width: int | None = None
    # Where pairs lensdb could not record wait for the next push (Settings.connector_state).
    state_dir: Path = field(default_factory=lambda: Settings().connector_state)
    select: Choice | None = None  # images chosen by their embeddings, in that order


@dataclass
class PushReport:
    created: int = 0
    predictions: int = 0
    skipped: int = 0
    batches: int = 0
    recovered: int = 0
    task_ids: list[int] = field(default_factory=list)

    def summary(self, project_id: int) -> str:
        parts = [
            f"created {self.created} task(s) in project {project_id} "
            f"({self.predictions} with predictions) in {self.batches} batch(es)",
            f"skipped {self.skipped} image(s) already sent to this project",
        ]
        if self.recovered:
            parts.append(f"recorded {self.recovered} task(s) left over from an earlier push")
        return "; ".join(parts)


def ensure_indexes(db: Client) -> None:
    try:
        db.query(state.ensure_indexes_query())
    except DatabaseError:
        pass  # a user without index rights still gets correct results, only slower


def _pending_file(state_dir: Path, ls_url: str, project_id: int) -> Path:
    tag = hashlib.sha256(f"{state.instance_key(ls_url)}#{project_id}".encode()).hexdigest()[:16]
    return state_dir / "push-pending" / f"{tag}.jsonl"


def _save_pending(
    state_dir: Path, ls_url: str, project_id: int, pairs: list[tuple[str, int]]
) -> Path:
    path = _pending_file(state_dir, ls_url, project_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(
            json.dumps(
                {"ls_url": state.instance_key(ls_url), "project": project_id, "pairs": pairs}
            )
            + "\n"
        )
    return path


def _record_pending(db: Client, state_dir: Path, ls_url: str, project_id: int) -> int:
    path = _pending_file(state_dir, ls_url, project_id)
    if not path.exists():
        return 0
    pairs = [
        tuple(p)
        for line in path.read_text().splitlines()
        if line.strip()
        for p in json.loads(line)["pairs"]
    ]
    if pairs:
        try:
            db.query(state.record_push_query(ls_url, project_id, pairs))
        except DatabaseError as exc:
            raise PushError(
                f"{len(pairs)} task(s) created by an earlier push are still not recorded in lensdb "
                f"({exc}); they are kept in {path}. Fix lensdb and push again."
            ) from None
    path.unlink()
    return len(pairs)


def candidates(
    db: Client, constraints: dict | None, skip: set[str], limit: int | None, page: int = 2000
) -> tuple[list[str], int]:
    """Images the constraints select that are not in `skip` (up to `limit`, stable order), and how many were."""
    out: list[str] = []
    skipped = offset = 0
    while limit is None or len(out) < limit:
        response, _ = db.query(Q.list_images_query(constraints, Q.UNIQUEID, page, offset))
        entities = Q.entities(response, "FindImage")
        for e in entities:
            if e["_uniqueid"] in skip:
                skipped += 1
            elif limit is None or len(out) < limit:
                out.append(e["_uniqueid"])
        offset += len(entities)
        if len(entities) < page:
            break
    return out, skipped


def chosen(
    db: Client, select: Choice, constraints: dict | None, skip: set[str], limit: int | None
) -> tuple[list[str], int]:
    """Like `candidates`, for images chosen by their embeddings (in the order chosen)."""
    picked = [c["_uniqueid"] for c in choose(db.query, select, constraints)]
    out = [u for u in picked if u not in skip]
    return out[:limit] if limit is not None else out, len(picked) - len(out)


def build_tasks(
    http: HttpClient, uids: list[str], label_config: str, opts: PushOptions
) -> list[dict]:
    params: dict[str, Any] = {
        "uniqueids": uids,
        "predictions": opts.predictions,
        "label_config": label_config,
        "properties": opts.properties,
        "ttl": opts.ttl,
        "strict": True,
    }
    if opts.pred_constraints:
        params["pred_constraints"] = opts.pred_constraints
    if opts.public_url:
        params["base_url"] = opts.public_url
    if opts.image_width:
        params["image_width"] = opts.image_width
    r = http.request("POST", "/labelstudio/tasks", json=params)
    if r.status_code != 200:
        try:
            info = r.json().get("info")
        except ValueError:
            info = f"HTTP {r.status_code}"
        raise PushError(f"lensdb could not build the tasks: {info}")
    return r.json()


def push(
    ls: LabelStudio,
    db: Client,
    http: HttpClient,
    opts: PushOptions,
    progress: Callable[[int], None] | None = None,
    total: Callable[[int], None] | None = None,
) -> PushReport:
    report = PushReport()
    project = ls.project(opts.project_id)  # fails early: wrong token, unknown project
    label_config = project.get("label_config") or ""
    ensure_indexes(db)
    try:
        report.recovered = _record_pending(db, opts.state_dir, ls.url, opts.project_id)
        response, _ = db.query(state.sent_images_query(ls.url, opts.project_id))
        sent = state.sent_images(response)
        if opts.select is not None:
            todo, report.skipped = chosen(db, opts.select, opts.constraints, set(sent), opts.limit)
        else:
            todo, report.skipped = candidates(db, opts.constraints, set(sent), opts.limit)
    except ValueError as exc:  # a --select the database cannot answer (no such set, ...)
        raise PushError(f"--select: {exc}") from None
    except DatabaseError as exc:
        raise PushError(f"lensdb refused the query: {exc}. Check --constraints.") from None
    if total:
        total(len(todo))
    for start in range(0, len(todo), opts.batch_size):
        batch = todo[start : start + opts.batch_size]
        tasks = build_tasks(http, batch, label_config, opts)
        ids = ls.import_tasks(
            opts.project_id, tasks
        )  # nothing was written to lensdb yet for this batch
        pairs = [(t["meta"]["lensdb"]["uniqueid"], tid) for t, tid in zip(tasks, ids, strict=True)]
        try:
            db.query(state.record_push_query(ls.url, opts.project_id, pairs))
        except DatabaseError as exc:
            path = _save_pending(opts.state_dir, ls.url, opts.project_id, pairs)
            raise PushError(
                f"Label Studio created {len(ids)} task(s), but lensdb could not record them ({exc}). "
                f"They are kept in {path} and will be recorded by the next push; "
                "run it once lensdb answers again."
            ) from None
        report.created += len(ids)
        report.predictions += sum(1 for t in tasks if t.get("predictions"))
        report.batches += 1
        report.task_ids += ids
        if progress:
            progress(len(batch))
    return report
