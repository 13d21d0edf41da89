"""POST /labelstudio/webhook: apply Label Studio's annotation events (and task deletions) to lensdb at once.

Label Studio sends no signature, so the webhook is registered with a shared secret in the header
`X-Lensdb-Webhook-Secret` (compared in constant time). Delivery is synchronous in the annotator's save
with a 1 s timeout, so the answer comes as soon as the one transaction is written. A missed event is
caught up by the next `lensdb labelstudio pull`.
"""

from __future__ import annotations

import hmac
import logging

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from lensdb.gateway.core import Gateway, QueryFailed, error
from lensdb.labelstudio import annotations as A
from lensdb.labelstudio import queries as Q

log = logging.getLogger("lensdb.gateway.webhook")
SECRET_HEADER = "x-lensdb-webhook-secret"
SAVES = {"ANNOTATION_CREATED", "ANNOTATION_UPDATED"}
DELETES = "ANNOTATIONS_DELETED"
TASKS_DELETED = (
    "TASKS_DELETED"  # their annotations go with them, and Label Studio sends no event for those
)


async def _newer_stored(gw: Gateway, ann: dict, project_id: int) -> bool:
    """True when lensdb already holds a later version of this annotation (a pull got there first)."""
    response, _ = await gw.query(
        [
            {
                "FindEntity": {
                    "with_class": Q.ANNOTATION_CLASS,
                    "constraints": {
                        "LS_id": ["==", str(ann["id"])],
                        **Q.annotation_scope(project_id),
                    },
                    "results": {"list": ["LS_updated_at"], "limit": 1},
                }
            }
        ]
    )
    entities = Q.entities(response, "FindEntity")
    stored = A.parse_time(entities[0].get("LS_updated_at")) if entities else None
    incoming = A.parse_time(ann.get("updated_at"))
    return bool(stored and incoming and stored > incoming)


def routes(gw: Gateway) -> list[BaseRoute]:
    async def receive(request: Request) -> Response:
        given = request.headers.get(SECRET_HEADER, "")
        if not given or not hmac.compare_digest(given.encode(), gw.config.webhook_secret.encode()):
            return error(
                403,
                "wrong or missing X-Lensdb-Webhook-Secret header: register the webhook again with "
                "`lensdb labelstudio webhook register --secret ...`",
            )
        try:
            event = await request.json()
            action = event.get("action")
            project = event.get("project") or {}
            project_id = int(project["id"])
            if not isinstance(action, str):
                raise TypeError("action")
        except (ValueError, KeyError, TypeError, AttributeError):
            return error(400, "not a Label Studio webhook payload (send_payload must be on)")
        try:
            if action in SAVES:
                ann, task = event.get("annotation") or {}, event.get("task") or {}
                if "id" not in ann or "id" not in task:
                    return error(400, f"{action} without annotation or task")
                if await _newer_stored(gw, ann, project_id):
                    return JSONResponse(
                        {"status": "ignored", "reason": "lensdb has a newer version"}
                    )
                await gw.query(A.save_query(ann, task, project))
            elif action in (DELETES, TASKS_DELETED):
                key = "annotations" if action == DELETES else "tasks"
                ids = [int(x["id"]) for x in event.get(key) or [] if "id" in x]
                if ids and action == TASKS_DELETED:
                    found, _ = await gw.query(A.task_annotations_query(project_id, "in", ids))
                    ids = A.annotation_ids(found)
                if ids:
                    await gw.query(A.combine(A.delete_query(i, project_id) for i in ids))
            else:
                return JSONResponse({"status": "ignored", "action": action})
        except QueryFailed as exc:
            log.warning("webhook %s for project %s refused by lensdb: %s", action, project_id, exc)
            return error(500, f"lensdb refused the change ({exc}); the next pull will retry it")
        return JSONResponse({"status": "ok", "action": action})

    return [Route("/labelstudio/webhook", receive, methods=["POST"])]
