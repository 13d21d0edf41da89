"""Label Studio's console log, one line per problem.

Stock Label Studio logs every API error with its full traceback (a user's typo in the storage form
printed 60 lines), and Django then logs the same 4xx response twice more (django.request and
django.server, each through two handlers). Behind `lensdb labelstudio start` that made 2,292 lines in
15 minutes of ordinary use. With LENSDB_LS_VERBOSE set, nothing is filtered.
"""

from __future__ import annotations

import logging
from typing import Any

CLIENT_ERROR = range(400, 500)
_DJANGO_CODES = {"Http404": 404, "PermissionDenied": 403}


def _words(detail: Any) -> str:
    """A DRF error detail (string, list or field dict) as one line."""
    if isinstance(detail, dict):
        return "; ".join(f"{k}: {_words(v)}" for k, v in detail.items())
    if isinstance(detail, list | tuple):
        return " ".join(_words(v) for v in detail)
    return str(detail)


class OneLinePerProblem(logging.Filter):
    """Client errors (4xx) become one WARNING line without traceback; Django's echoes of them go."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name in ("django.request", "django.server"):
            return getattr(record, "status_code", None) not in CLIENT_ERROR
        exc = record.exc_info[1] if record.exc_info else None
        # DRF's exceptions carry their status; Django's Http404 and PermissionDenied do not.
        code = getattr(exc, "status_code", None) or _DJANGO_CODES.get(type(exc).__name__)
        if exc is not None and code in CLIENT_ERROR:
            record.msg, record.args = (
                "%s %s: %s",
                (code, type(exc).__name__, _words(getattr(exc, "detail", exc))),
            )
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def quiet_logging(config: dict, verbose: bool) -> dict:
    """Label Studio's LOGGING dict with duplicates removed and, unless verbose, the filter above."""
    loggers = config.setdefault("loggers", {})
    # 'django' has the console handler and also propagates to root's console: every line twice.
    loggers.setdefault("django", {})["propagate"] = False
    # The SDK logs every failed connection attempt with a stack trace; the plugin reports them itself.
    loggers["aperturedb"] = {"level": "CRITICAL", "propagate": False, "handlers": []}
    if not verbose:
        config.setdefault("filters", {})["lensdb_one_line"] = {"()": OneLinePerProblem}
        for handler in config.get("handlers", {}).values():
            handler.setdefault("filters", []).append("lensdb_one_line")
    return config
