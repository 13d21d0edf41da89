"""Register lensdb's webhook receiver in a Label Studio project (idempotent: an existing one is updated)."""

from __future__ import annotations

from lensdb.connector.lsclient import WEBHOOK_ACTIONS, LabelStudio

SECRET_HEADER = "X-Lensdb-Webhook-Secret"
PATH = "/labelstudio/webhook"


def receiver_url(base: str) -> str:
    base = base.rstrip("/")
    return base if base.endswith(PATH) else base + PATH


def register(ls: LabelStudio, project_id: int, receiver: str, secret: str) -> tuple[dict, bool]:
    """The webhook (created or updated) and whether it was created."""
    url = receiver_url(receiver)
    ls.project(project_id)  # a clear error for an unknown project before anything else
    headers = {SECRET_HEADER: secret}
    for hook in ls.webhooks(project_id):
        if hook.get("url") == url and hook.get("project") == project_id:
            return ls.update_webhook(
                hook["id"],
                headers=headers,
                actions=WEBHOOK_ACTIONS,
                send_payload=True,
                send_for_all_actions=False,
                is_active=True,
            ), False
    return ls.create_webhook(project_id, url, headers), True
