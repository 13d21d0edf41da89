"""REST serializers of the lensdb storages: secrets are write-only, checks speak plainly."""

from __future__ import annotations

import copy

from io_storages.serializers import ExportStorageSerializer, ImportStorageSerializer
from rest_framework import serializers

from lensdb.labelstudio.plugin.models import (
    LensdbExportStorage,
    LensdbImportStorage,
    LensdbOutbox,
    LensdbStorageMixin,
)


def _candidate(serializer: serializers.ModelSerializer, data: dict):
    """The storage as it would be after this request, with unchanged secrets taken from the saved one."""
    model = serializer.Meta.model
    if serializer.instance is not None:
        storage = copy.copy(serializer.instance)
    else:
        storage = model(**{k: v for k, v in data.items() if k != "project"})
        storage.project = data.get("project")
        saved_id = (serializer.initial_data or {}).get("id")
        saved = model.objects.filter(pk=saved_id).first() if saved_id else None
        if saved is not None:
            for attr in LensdbStorageMixin.secure_fields:
                if not data.get(attr):
                    setattr(storage, attr, getattr(saved, attr))
    for key, value in data.items():
        if (
            key in LensdbStorageMixin.secure_fields
            and not value
            and serializer.instance is not None
        ):
            continue  # an empty secret in an edit means "keep the saved one"
        if key != "project":
            setattr(storage, key, value)
    return storage


def connection_defaults() -> dict[str, object]:
    """What an empty Host, Port or User Name means: the server `lensdb labelstudio start` uses."""
    from django.conf import settings

    return {
        "hostname": getattr(settings, "LENSDB_DEFAULT_HOST", "") or "127.0.0.1",
        "port": int(getattr(settings, "LENSDB_DEFAULT_PORT", 0) or 55555),
        "username": "admin",
    }


class _Secrets:
    def to_internal_value(self, data):
        if hasattr(data, "copy"):
            data = data.copy()
            # The storage form sends "" for an empty number field; it means "not set".
            if data.get("limit") == "":
                data.pop("limit")
            # An empty connection field takes its default (the form shows it as the placeholder). In an
            # edit, a field left out of the request keeps its saved value.
            for name, value in connection_defaults().items():
                given = data.get(name)
                if (given is None and self.instance is None) or (
                    isinstance(given, str) and not given.strip()
                ):
                    data[name] = value
        return super().to_internal_value(data)

    def to_representation(self, instance):
        out = super().to_representation(instance)
        for attr in LensdbStorageMixin.secure_fields:
            out.pop(attr, None)
        return out

    def validate(self, data):
        data = super().validate(data)
        _candidate(self, data).validate_connection()
        if self.instance is not None:
            for attr in LensdbStorageMixin.secure_fields:
                if attr in data and not data[attr]:
                    data.pop(attr)
        return data


class LensdbImportStorageSerializer(_Secrets, ImportStorageSerializer):
    type = serializers.ReadOnlyField(default="lensdb")

    class Meta:
        model = LensdbImportStorage
        fields = "__all__"


class LensdbExportStorageSerializer(_Secrets, ExportStorageSerializer):
    type = serializers.ReadOnlyField(default="lensdb")
    backlog = serializers.SerializerMethodField(
        help_text="Changes waiting to be written to the database"
    )
    last_error = serializers.SerializerMethodField(
        help_text="Last error while writing to the database"
    )

    class Meta:
        model = LensdbExportStorage
        exclude = ["outbox_lease_until", "outbox_lease_owner"]

    def get_backlog(self, obj: LensdbExportStorage) -> int:
        return LensdbOutbox.objects.filter(storage=obj).count() if obj.pk else 0

    def get_last_error(self, obj: LensdbExportStorage) -> str | None:
        if not obj.pk:
            return None
        return (
            LensdbOutbox.objects.filter(storage=obj)
            .exclude(last_error=None)
            .order_by("-id")
            .values_list("last_error", flat=True)
            .first()
        )
