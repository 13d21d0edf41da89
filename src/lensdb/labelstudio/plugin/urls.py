"""URLs: the lensdb storage routes first, then all of Label Studio's own."""

from __future__ import annotations

from core.urls import urlpatterns as label_studio_urlpatterns
from django.urls import path

from lensdb.labelstudio.plugin import api

_routes = [
    (
        "",
        "",
        api.LensdbImportStorageListAPI,
        api.LensdbImportStorageDetailAPI,
        api.LensdbImportStorageSyncAPI,
        api.LensdbImportStorageValidateAPI,
        api.LensdbImportStorageFormLayoutAPI,
    ),
    (
        "export/",
        "export-",
        api.LensdbExportStorageListAPI,
        api.LensdbExportStorageDetailAPI,
        api.LensdbExportStorageSyncAPI,
        api.LensdbExportStorageValidateAPI,
        api.LensdbExportStorageFormLayoutAPI,
    ),
]

urlpatterns = []
for prefix, name, listing, detail, sync, validate, form in _routes:
    base = f"api/storages/{prefix}lensdb"
    urlpatterns += [
        # Label Studio's frontend calls both /api/storages/T/ and /api/storages/export/T (no slash).
        path(f"{base}/", listing.as_view(), name=f"{name}storage-lensdb-list"),
        path(base, listing.as_view()),
        path(f"{base}/<int:pk>", detail.as_view(), name=f"{name}storage-lensdb-detail"),
        path(f"{base}/<int:pk>/sync", sync.as_view(), name=f"{name}storage-lensdb-sync"),
        path(f"{base}/validate", validate.as_view(), name=f"{name}storage-lensdb-validate"),
        path(f"{base}/form", form.as_view(), name=f"{name}storage-lensdb-form"),
    ]
urlpatterns += label_studio_urlpatterns
