"""Django settings for stock Label Studio with the lensdb storage plugin.

Use: DJANGO_SETTINGS_MODULE=lensdb.labelstudio.plugin.settings label-studio start ...
"""

from __future__ import annotations

import os

from label_studio.core.utils.params import has_env

from lensdb.labelstudio.plugin.logs import quiet_logging
from lensdb.settings import Settings


def _default_env(name: str, value: str) -> None:
    # Quiet and offline-safe unless the user asked otherwise: no PyPI version check, no Sentry, no analytics.
    if not has_env(name):
        os.environ["LABEL_STUDIO_" + name] = value


for _name, _value in (
    ("LATEST_VERSION_CHECK", "false"),
    ("SENTRY_DSN", ""),
    ("FRONTEND_SENTRY_DSN", ""),
    ("COLLECT_ANALYTICS", "false"),
):
    _default_env(_name, _value)

# Label Studio's settings read django.conf.settings while being imported, so import them under their own
# module name and restore ours afterwards.
_ours = os.environ.get("DJANGO_SETTINGS_MODULE")
os.environ["DJANGO_SETTINGS_MODULE"] = "label_studio.core.settings.label_studio"
try:
    from label_studio.core.settings.label_studio import *  # noqa: E402,F403
    from label_studio.core.settings.label_studio import (  # noqa: E402
        INSTALLED_APPS,
        IO_STORAGES_IMPORT_LINK_NAMES,
        LOGGING,
        get_env,
    )
finally:
    if _ours is None:
        os.environ.pop("DJANGO_SETTINGS_MODULE", None)
    else:
        os.environ["DJANGO_SETTINGS_MODULE"] = _ours

INSTALLED_APPS = [*INSTALLED_APPS, "lensdb.labelstudio.plugin.apps.LensdbLabelStudioConfig"]
GET_STORAGE_LIST = "lensdb.labelstudio.plugin.api.get_storage_list"
ROOT_URLCONF = "lensdb.labelstudio.plugin.urls"
IO_STORAGES_IMPORT_LINK_NAMES = [
    *IO_STORAGES_IMPORT_LINK_NAMES,
    "io_storages_lensdbimportstoragelink",
]

# Label Studio 1.23 shows its new storage wizard (whose provider list is fixed) when this is "opensource";
# any other value brings back the dialog that lists types from /api/storages/types, lensdb among them.
FRONTEND_SENTRY_ENVIRONMENT = get_env("FRONTEND_SENTRY_ENVIRONMENT", "lensdb")
if FRONTEND_SENTRY_ENVIRONMENT == "opensource":
    FRONTEND_SENTRY_ENVIRONMENT = "lensdb"

# lensdb's own settings, read from the environment once (lensdb.settings); the plugin reads them here.
LENSDB = Settings.from_env()
# Defaults the launcher passes for the storage form (host/port of the lensdb server it started).
LENSDB_DEFAULT_HOST = LENSDB.ls_default_host
LENSDB_DEFAULT_PORT = LENSDB.ls_default_port
LENSDB_SYNC_PAGE_SIZE = LENSDB.sync_page_size

# One line per problem on the console; LENSDB_LS_VERBOSE=1 (lensdb labelstudio start -v) keeps tracebacks.
LOGGING = quiet_logging(LOGGING, verbose=LENSDB.ls_verbose)

# Label Studio's community edition runs background jobs inline (REDIS_ENABLED is False). With
# LENSDB_REDIS_URL set, syncs and outbox sends become RQ jobs; run workers with the same settings:
# DJANGO_SETTINGS_MODULE=lensdb.labelstudio.plugin.settings python <label_studio>/manage.py rqworker default low
_redis_url = LENSDB.redis_url
if _redis_url:
    from label_studio.core.settings.label_studio import RQ_QUEUES  # noqa: E402

    REDIS_ENABLED = True
    RQ_QUEUES = {
        name: {"URL": _redis_url, "DEFAULT_TIMEOUT": q.get("DEFAULT_TIMEOUT", 180)}
        for name, q in RQ_QUEUES.items()
    }
