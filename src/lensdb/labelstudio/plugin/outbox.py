"""Target storage writes through a durable outbox.

Every annotation change becomes one row holding the exact transaction to send; rows are sent in order
and deleted once the database confirmed them. If the database is down the rows wait (in Label Studio's
own database) and a retry loop, the next save, or "Sync" on the storage sends them later.
A lease on the storage row makes sure only one process sends a storage's rows at a time.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q as DQ
from django.utils import timezone
from rest_framework.exceptions import ValidationError

from lensdb.client import DatabaseError, DatabaseUnavailable
from lensdb.labelstudio import annotations as A
from lensdb.labelstudio.plugin.models import (
    LensdbExportStorage,
    LensdbExportStorageLink,
    LensdbOutbox,
    installation_id,
)

logger = logging.getLogger(__name__)

LEASE_SECONDS = 120
RETRY_SECONDS = settings.LENSDB.outbox_retry_seconds


# ---- the plugin's edge: Django models -> the plain data the domain layer takes ----------------------------


def _email(user) -> str:
    return getattr(user, "email", "") or "" if user is not None else ""


def _iso(when) -> str | None:
    return when.isoformat() if when else None


def save_query(annotation) -> list[dict]:
    """The transaction for one annotation, built by the shared domain layer from plain data."""
    task, project = annotation.task, annotation.project
    ann = {
        "id": annotation.id,
        "task": task.id,
        "project": project.id,
        "result": annotation.result,
        "completed_by": _email(annotation.completed_by),
        "updated_by": _email(annotation.updated_by),
        "was_cancelled": annotation.was_cancelled,
        "ground_truth": annotation.ground_truth,
        "lead_time": annotation.lead_time,
        "created_at": _iso(annotation.created_at),
        "updated_at": _iso(annotation.updated_at),
    }
    return A.save_query(
        ann,
        {"id": task.id, "meta": task.meta, "data": task.data},
        {"id": project.id, "title": project.title, "label_config": project.label_config},
        instance=installation_id(),
    )


def enqueue_save(storage: LensdbExportStorage, annotation) -> None:
    LensdbOutbox.objects.create(
        storage=storage,
        action=LensdbOutbox.SAVE,
        annotation_id=annotation.id,
        query=save_query(annotation),
    )


def enqueue_delete(storage: LensdbExportStorage, annotation_id: int, project_id: int) -> None:
    LensdbOutbox.objects.create(
        storage=storage,
        action=LensdbOutbox.DELETE,
        annotation_id=annotation_id,
        query=A.delete_query(annotation_id, project_id, installation_id()),
    )


# ---- sending ---------------------------------------------------------------------------------------


_HOST = socket.gethostname()[:20]


def _take_lease(storage_id: int) -> str | None:
    """The right to send this storage's rows, for LEASE_SECONDS; None if another sender has it.

    The lease names its process (`<random>:<pid>@<host>`), so a Label Studio killed while
    sending (SIGKILL, OOM) does not hold up delivery for the rest of the lease: a process of the
    same machine takes over a lease whose process is gone.
    """
    now = timezone.now()
    token = f"{uuid.uuid4().hex}:{os.getpid()}@{_HOST}"
    until = now + timedelta(seconds=LEASE_SECONDS)
    taken = (
        LensdbExportStorage.objects.filter(pk=storage_id)
        .filter(DQ(outbox_lease_until__isnull=True) | DQ(outbox_lease_until__lt=now))
        .update(outbox_lease_until=until, outbox_lease_owner=token)
    )
    if not taken:
        owner = (
            LensdbExportStorage.objects.filter(pk=storage_id)
            .values_list("outbox_lease_owner", flat=True)
            .first()
        )
        if _owner_is_gone(owner):
            taken = LensdbExportStorage.objects.filter(
                pk=storage_id, outbox_lease_owner=owner
            ).update(outbox_lease_until=until, outbox_lease_owner=token)
            if taken:
                logger.info("took over the outbox lease of a process that is gone (%s)", owner)
    return token if taken else None


def _owner_is_gone(owner: str | None) -> bool:
    """Whether a lease was taken by a process of this machine that no longer runs."""
    rest, _, host = (owner or "").rpartition("@")
    pid = rest.rpartition(":")[2]
    if host != _HOST or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, as another user
        return False
    return False


def _release_lease(storage_id: int, token: str) -> None:
    LensdbExportStorage.objects.filter(pk=storage_id, outbox_lease_owner=token).update(
        outbox_lease_until=None, outbox_lease_owner=None
    )


def _send(storage: LensdbExportStorage, row: LensdbOutbox) -> bool:
    """Send one row; False when the database is unreachable (stop and keep the order)."""
    try:
        storage.get_client().query(row.query)
    except DatabaseUnavailable as exc:
        row.attempts += 1
        row.last_error = str(exc)
        row.last_attempt_at = timezone.now()
        row.save(update_fields=["attempts", "last_error", "last_attempt_at"])
        ensure_retry_loop()
        return False
    except DatabaseError as exc:
        # Refused, not unreachable: retrying will not help; keep it visible and move on.
        logger.error("lensdb rejected %s of annotation %s: %s", row.action, row.annotation_id, exc)
        row.attempts += 1
        row.last_error = f"rejected: {exc}"
        row.rejected = True
        row.last_attempt_at = timezone.now()
        row.save(update_fields=["attempts", "last_error", "rejected", "last_attempt_at"])
        return True
    if row.action == LensdbOutbox.SAVE:
        from tasks.models import Annotation

        if Annotation.objects.filter(pk=row.annotation_id).exists():
            LensdbExportStorageLink.objects.get_or_create(
                annotation_id=row.annotation_id, storage=storage
            )
    row.delete()
    return True


def _recently_unreachable(storage: LensdbExportStorage) -> bool:
    """True while the oldest waiting row failed to reach the database less than a retry period ago."""
    head = LensdbOutbox.objects.filter(storage=storage, rejected=False).order_by("id").first()
    return bool(
        head
        and head.last_attempt_at
        and head.last_error
        and timezone.now() - head.last_attempt_at < timedelta(seconds=max(RETRY_SECONDS, 1))
    )


def flush(
    storage: LensdbExportStorage, include_rejected: bool = False, from_save: bool = False
) -> int:
    """Send this storage's waiting rows in order; returns how many were confirmed.

    From a save, a database that just failed is not tried again (an unreachable host could stall
    the annotator for the connect timeout); the retry loop sends the backlog instead.
    """
    if from_save and _recently_unreachable(storage):
        ensure_retry_loop()
        report(storage)
        return 0
    token = _take_lease(storage.id)
    if token is None:
        return 0  # another thread or process is sending; it loops until the outbox is empty
    sent = 0
    try:
        if include_rejected:
            LensdbOutbox.objects.filter(storage=storage, rejected=True).update(rejected=False)
        while True:
            rows = list(
                LensdbOutbox.objects.filter(storage=storage, rejected=False).order_by("id")[:200]
            )
            if not rows:
                break
            for row in rows:
                if not _send(storage, row):
                    return sent
                if not row.rejected:
                    sent += 1
            LensdbExportStorage.objects.filter(pk=storage.id, outbox_lease_owner=token).update(
                outbox_lease_until=timezone.now() + timedelta(seconds=LEASE_SECONDS)
            )
    finally:
        _release_lease(storage.id, token)
        report(storage)
    return sent


def report(storage: LensdbExportStorage) -> None:
    """Show the backlog and last error on the storage card (status, logs and meta)."""
    waiting = LensdbOutbox.objects.filter(storage=storage)
    pending = waiting.filter(rejected=False).count()
    rejected = waiting.filter(rejected=True).count()
    last = (
        waiting.exclude(last_error=None)
        .order_by("-id")
        .values_list("last_error", flat=True)
        .first()
    )
    fresh = LensdbExportStorage.objects.filter(pk=storage.pk).first()
    if fresh is None:
        return
    meta = dict(fresh.meta or {})
    had_backlog = bool(meta.get("outbox_pending") or meta.get("outbox_rejected"))
    meta.update(outbox_pending=pending, outbox_rejected=rejected, outbox_last_error=last)
    fields = ["meta"]
    busy = fresh.status in (fresh.Status.QUEUED, fresh.Status.IN_PROGRESS)
    if (pending or rejected) and not busy:
        lines = []
        if pending:
            lines.append(
                f"{pending} annotation change(s) are waiting to be written to lensdb and will be "
                "sent automatically when it answers."
            )
        if rejected:
            lines.append(
                f"{rejected} change(s) were refused by the database; press Sync to retry them."
            )
        if last:
            lines.append(f"Last error: {last}")
        fresh.status, fresh.traceback = fresh.Status.FAILED, "\n".join(lines)
        fields += ["status", "traceback"]
    elif had_backlog and not busy:
        fresh.status, fresh.traceback = fresh.Status.COMPLETED, None
        fields += ["status", "traceback"]
    fresh.meta = meta
    fresh.save(update_fields=fields)


def flush_job(storage_id: int) -> int:
    """Entry point for Label Studio's job runner (RQ when Redis is there, inline otherwise)."""
    storage = LensdbExportStorage.objects.filter(pk=storage_id).first()
    return flush(storage, from_save=True) if storage else 0


def schedule_flush(storage: LensdbExportStorage) -> None:
    """Send a save once it commits, without making the annotator's request wait for lensdb.

    With Redis, Label Studio's RQ workers send it. Without, this process's sender thread does,
    woken at once. Sending inside the request added 210 ms at p50 to a save on the loaded test
    machine (bench/labelstudio_save.py: the lease, the report and the row's delete are commits to
    Label Studio's database, plus the round trip to lensdb). The row is already in the outbox,
    so a process that dies before sending it loses nothing: the next sender takes it over.
    """
    from core.redis import redis_connected, start_job_async_or_sync

    sid = storage.id
    if redis_connected():
        transaction.on_commit(lambda: start_job_async_or_sync(flush_job, sid))
        return
    ensure_retry_loop()
    transaction.on_commit(_wake.set)


# ---- "Sync" on the target storage -----------------------------------------------------------------------


def export_missing(storage: LensdbExportStorage) -> None:
    """Send the backlog (refused rows included), then every annotation the database lacks or has older."""
    from tasks.models import Annotation

    storage.info_set_in_progress()
    flush(storage, include_rejected=True)
    if LensdbOutbox.objects.filter(storage=storage, rejected=False).exists():
        raise ValidationError(
            "lensdb: "
            + (
                LensdbOutbox.objects.filter(storage=storage)
                .values_list("last_error", flat=True)
                .first()
                or "unreachable"
            )
        )
    project = storage.project
    try:
        stored = _stored_versions(storage, project.id)
    except DatabaseError as exc:
        raise ValidationError(f"lensdb: {exc}") from exc
    ids: set[str] = set()
    exported = 0
    for ann in Annotation.objects.filter(project=project).select_related(
        "task", "completed_by", "updated_by"
    ):
        ids.add(str(ann.id))
        updated = ann.updated_at.isoformat() if ann.updated_at else None
        if str(ann.id) in stored and stored[str(ann.id)] == updated:
            continue
        enqueue_save(storage, ann)
        exported += 1
    flush(storage)
    storage.refresh_from_db()
    if storage.status == storage.Status.IN_PROGRESS:
        # The card reads "<last_sync_count> (<total_annotations> total)": show how many of the project's
        # annotations lensdb holds, not only what this sync sent ("0 (1 total)" looked like a loss).
        try:
            held = len(ids & set(_stored_versions(storage, project.id))) if exported else len(ids)
        except DatabaseError:
            held = (
                len(ids) - exported
            )  # the database went away after the flush; count what was there
        storage.info_set_completed(
            last_sync_count=held,
            total_annotations=len(ids),
            sent_this_sync=exported,
            already_in_database=len(ids) - exported,
        )


def _stored_versions(storage: LensdbExportStorage, project_id: int) -> dict[str, str | None]:
    """LS_id -> LS_updated_at of this project's annotations in the database."""
    response, _ = storage.get_client().query(A.stored_versions_query(project_id, installation_id()))
    return A.stored_versions(response)


# ---- retry loop ---------------------------------------------------------------------------------------

_loop_started = False
_loop_lock = threading.Lock()
_wake = threading.Event()  # set after a save commits: send now rather than at the next round


def _retry_forever() -> None:
    """The sender: woken by saves, and every RETRY_SECONDS (if > 0) to retry a backlog."""
    from django.db import close_old_connections

    while True:
        woken = _wake.wait(RETRY_SECONDS if RETRY_SECONDS > 0 else None)
        _wake.clear()
        try:
            close_old_connections()
            ids = set(
                LensdbOutbox.objects.filter(rejected=False).values_list("storage_id", flat=True)
            )
            for storage in LensdbExportStorage.objects.filter(pk__in=ids):
                # Woken by a save: a database that just failed is left to the next timed round.
                flush(storage, from_save=woken)
        except Exception:  # noqa: BLE001 - keep the loop alive; the next round tries again
            logger.debug("lensdb outbox retry round failed", exc_info=True)


def ensure_retry_loop() -> None:
    """Start the background sender once per process (daemon thread: it dies with the server)."""
    global _loop_started
    with _loop_lock:
        if _loop_started:
            return
        _loop_started = True
    threading.Thread(target=_retry_forever, name="lensdb-outbox", daemon=True).start()


def should_start_loop_at_boot() -> bool:
    # Management commands such as migrate should not start a sender; servers and workers should.
    args = " ".join(sys.argv[1:3])
    return not any(
        cmd in args for cmd in ("makemigrations", "migrate", "collectstatic", "shell", "test")
    )
