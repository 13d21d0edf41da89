"""REST views of the lensdb storage type: Label Studio's own storage views, bound to our models.

The form views read `form_layout.yml` next to this module.
"""

from __future__ import annotations

from io_storages.api import (
    ExportStorageDetailAPI,
    ExportStorageFormLayoutAPI,
    ExportStorageListAPI,
    ExportStorageSyncAPI,
    ExportStorageValidateAPI,
    ImportStorageDetailAPI,
    ImportStorageFormLayoutAPI,
    ImportStorageListAPI,
    ImportStorageSyncAPI,
    ImportStorageValidateAPI,
)

from lensdb.labelstudio.plugin.models import LensdbExportStorage, LensdbImportStorage
from lensdb.labelstudio.plugin.serializers import (
    LensdbExportStorageSerializer,
    LensdbImportStorageSerializer,
)

NAME = "lensdb"
TITLE = "lensdb (ApertureDB-compatible)"


class LensdbImportStorageListAPI(ImportStorageListAPI):
    queryset = LensdbImportStorage.objects.all()
    serializer_class = LensdbImportStorageSerializer


class LensdbImportStorageDetailAPI(ImportStorageDetailAPI):
    queryset = LensdbImportStorage.objects.all()
    serializer_class = LensdbImportStorageSerializer


class LensdbImportStorageSyncAPI(ImportStorageSyncAPI):
    serializer_class = LensdbImportStorageSerializer


class LensdbImportStorageValidateAPI(ImportStorageValidateAPI):
    serializer_class = LensdbImportStorageSerializer


def _with_defaults(form_layout: dict) -> dict:
    """Prefill host and port with the lensdb server the launcher started or was pointed at."""
    from django.conf import settings

    defaults = {"hostname": getattr(settings, "LENSDB_DEFAULT_HOST", ""),
                "port": getattr(settings, "LENSDB_DEFAULT_PORT", 55555)}
    for section in form_layout.values():
        for row in section:
            for field in row.get("fields", []):
                if defaults.get(field.get("name")):
                    field["value"] = defaults[field["name"]]
    return form_layout


class LensdbImportStorageFormLayoutAPI(ImportStorageFormLayoutAPI):
    def post_process_form(self, form_layout: dict) -> dict:
        return _with_defaults(form_layout)


class LensdbExportStorageListAPI(ExportStorageListAPI):
    queryset = LensdbExportStorage.objects.all()
    serializer_class = LensdbExportStorageSerializer


class LensdbExportStorageDetailAPI(ExportStorageDetailAPI):
    queryset = LensdbExportStorage.objects.all()
    serializer_class = LensdbExportStorageSerializer


class LensdbExportStorageSyncAPI(ExportStorageSyncAPI):
    serializer_class = LensdbExportStorageSerializer


class LensdbExportStorageValidateAPI(ExportStorageValidateAPI):
    serializer_class = LensdbExportStorageSerializer


class LensdbExportStorageFormLayoutAPI(ExportStorageFormLayoutAPI):
    def post_process_form(self, form_layout: dict) -> dict:
        return _with_defaults(form_layout)


def get_storage_list() -> list[dict]:
    """Label Studio's storage types plus lensdb (settings.GET_STORAGE_LIST points here)."""
    from io_storages.functions import get_storage_list as stock

    return [*stock(), {"name": NAME, "title": TITLE, "import_list_api": LensdbImportStorageListAPI,
                       "export_list_api": LensdbExportStorageListAPI}]
