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
from rest_framework.response import Response

from lensdb.labelstudio.plugin.models import LensdbExportStorage, LensdbImportStorage
from lensdb.labelstudio.plugin.serializers import (
    LensdbExportStorageSerializer,
    LensdbImportStorageSerializer,
    connection_defaults,
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
    """Check Connection: connect, then say how many images and predictions a sync would bring.

    Label Studio's dialog shows only "Successfully connected!" for a 200; a selection of no image is
    therefore answered 400 with the reason under the constraints field, and the counts go in the body.
    """

    serializer_class = LensdbImportStorageSerializer

    def create(self, request, *args, **kwargs):
        from io_storages.functions import validate_storage_instance

        storage = validate_storage_instance(request, self.serializer_class)
        return Response(storage.selection_report())


def _with_defaults(form_layout: dict) -> dict:
    """Show the server the launcher started (or was pointed at) as the Host and Port placeholders.

    Placeholders, not values: the storage form pins a text or number field that has a value, so the
    user could not type another server. An empty field takes this default when saved (serializers.py).
    """
    defaults = connection_defaults()
    for section in form_layout.values():
        for row in section:
            for field in row.get("fields", []):
                if field.get("name") in ("hostname", "port"):
                    field.pop("value", None)
                    field["placeholder"] = str(defaults[field["name"]])
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

    return [
        *stock(),
        {
            "name": NAME,
            "title": TITLE,
            "import_list_api": LensdbImportStorageListAPI,
            "export_list_api": LensdbExportStorageListAPI,
        },
    ]
