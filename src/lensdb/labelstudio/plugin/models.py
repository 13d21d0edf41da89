"""Storage models: lensdb (or any ApertureDB-compatible server) as Label Studio source and target storage."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from django.db import models
from django.utils.translation import gettext_lazy as _
from io_storages.base_models import (
    ExportStorage,
    ExportStorageLink,
    ImportStorage,
    ImportStorageLink,
    ProjectStorageMixin,
)
from rest_framework.exceptions import APIException

from lensdb.client import (
    Client,
    ConnectionSettings,
    DatabaseError,
    DatabaseUnavailable,
    client_for,
)
from lensdb.labelstudio import queries as Q
from lensdb.labelstudio.annotations import IMAGE_URI_SCHEME, parse_image_uri
from lensdb.labelstudio.queries import UNIQUEID, image_blob_query, list_images_query
from lensdb.media import content_type, parse_range

logger = logging.getLogger(__name__)


# ---- what the storages do, plugged in by apps.py ------------------------------------------------------
# sync.py and outbox.py work on these models, so the models must not import them (that was a cycle,
# hidden by imports inside methods). They meet through these two seams, wired once in AppConfig.ready.


class SourceSync(Protocol):
    """Creates tasks for a source storage (plugin/sync.py)."""

    def iter_image_pages(self, storage: LensdbImportStorageBase) -> Iterator[list[dict]]: ...

    def sync_source(self, storage: LensdbImportStorageBase) -> None: ...


class TargetWriter(Protocol):
    """Writes annotation changes for a target storage through the outbox (plugin/outbox.py)."""

    def enqueue_save(self, storage: LensdbExportStorage, annotation: Any) -> None: ...

    def enqueue_delete(
        self, storage: LensdbExportStorage, annotation_id: int, project_id: int
    ) -> None: ...

    def flush(
        self, storage: LensdbExportStorage, include_rejected: bool = False, from_save: bool = False
    ) -> int: ...

    def export_missing(self, storage: LensdbExportStorage) -> None: ...


@dataclass
class Services:
    source: SourceSync
    target: TargetWriter


_services: list[Services] = []


def wire(services_: Services) -> None:
    """Called by AppConfig.ready with the sync and outbox modules."""
    _services[:] = [services_]


def services() -> Services:
    if not _services:
        raise RuntimeError(
            "the lensdb plugin is not set up: its app config "
            "(lensdb.labelstudio.plugin.apps.LensdbLabelStudioConfig) must be in INSTALLED_APPS"
        )
    return _services[0]


SCHEME = IMAGE_URI_SCHEME


def parse_json_field(text: str | None, what: str) -> dict:
    """A JSON object from a text field; ValueError in words a user understands."""
    if text is None or not str(text).strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{what} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}."
        ) from None
    if not isinstance(value, dict):
        raise ValueError(f'{what} must be a JSON object such as {{"width": [">", 0]}}.')
    for key, pred in value.items():
        if key in ("any", "all") and isinstance(pred, dict):
            continue
        if not isinstance(pred, list) or len(pred) not in (2, 4):
            raise ValueError(
                f"{what}: the condition for '{key}' must be a list like [\"==\", value] "
                f'or [">=", low, "<", high].'
            )
    return value


def split_names(text: str | None) -> list[str]:
    return [x.strip() for x in (text or "").replace("\n", ",").split(",") if x.strip()]


class StorageFieldError(APIException):
    """A problem with one field of the storage form, answered 400 as `detail` naming the field.

    Label Studio 1.23's storage dialog renders any `validation_errors` body in its "Runtime error /
    Ask on Slack" modal, for Check Connection and Save alike, and never under the field; a 400 with
    only `detail` becomes a short notice instead. The field stays machine-readable in
    `display_context`, which Label Studio's error handler copies into the body.
    """

    status_code = 400
    default_code = "invalid"

    def __init__(self, field: str, message: str) -> None:
        label = FIELD_LABELS.get(field, field)
        super().__init__(f"{label}: {message}")
        self.display_context = {"field": field, "errors": {field: [message]}}


FIELD_LABELS = {
    "hostname": "Host",
    "port": "Port",
    "username": "User Name",
    "password": "Password",
    "token": "Token",
    "use_ssl": "Use TLS",
    "constraints": "Image constraints",
    "pred_constraints": "Prediction constraints",
    "limit": "Limit",
}


class LensdbStorageMixin(models.Model):
    """Connection fields; names follow the ApertureDB fork of Label Studio where it has them."""

    hostname = models.TextField(
        _("hostname"), null=True, blank=True, help_text="lensdb / ApertureDB host name"
    )
    port = models.PositiveIntegerField(
        _("port"), null=True, blank=True, default=55555, help_text="TCP port"
    )
    username = models.TextField(
        _("username"), null=True, blank=True, default="admin", help_text="User name"
    )
    password = models.TextField(_("password"), null=True, blank=True, help_text="User password")
    token = models.TextField(
        _("token"), null=True, blank=True, help_text="User token (instead of a password)"
    )
    use_ssl = models.BooleanField(
        _("use_ssl"),
        default=False,
        help_text="Encrypt the connection with TLS (lensdb serve accepts it on its TCP port)",
    )
    verify_certificate = models.BooleanField(
        _("verify_certificate"),
        default=True,
        help_text="Check the server's TLS certificate and host name",
    )

    secure_fields = ("password", "token")

    def connection_settings(self) -> ConnectionSettings:
        return ConnectionSettings(
            host=str(self.hostname or "").strip(),
            port=int(self.port or 55555),
            username=str(self.username or ""),
            password=str(self.password or ""),
            token=str(self.token or ""),
            use_ssl=bool(self.use_ssl),
            verify_certificate=bool(self.verify_certificate),
        )

    def get_client(self) -> Client:
        return client_for(self.connection_settings())

    def validate_connection(self, client: Any = None) -> None:
        """Check Connection: raise a StorageFieldError that says what is wrong and which field it concerns."""
        if not str(self.hostname or "").strip():
            raise StorageFieldError(
                "hostname", "Give the host name of the lensdb server (e.g. 127.0.0.1)."
            )
        if not self.password and not self.token:
            raise StorageFieldError("password", "Give a password or a token for the database user.")
        self.check_fields()
        try:
            self.get_client().status()
            self.check_with_server()
        except DatabaseUnavailable as exc:
            field = exc.field or "hostname"
            if field == "password" and self.token and not self.password:
                field = "token"
            raise StorageFieldError(field, str(exc)) from None
        except DatabaseError as exc:
            raise StorageFieldError("hostname", str(exc)) from None

    def check_fields(self) -> None:
        """Field checks that need no server; subclasses add theirs."""

    def check_with_server(self) -> None:
        """Checks that ask the server (e.g. that it accepts the constraints); subclasses add theirs."""

    class Meta:
        abstract = True


class _BytesStream:
    """The streaming body Label Studio's resolve proxy expects from `get_bytes_stream`."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def iter_chunks(self, chunk_size: int = 1 << 16):
        for i in range(0, len(self._data), chunk_size):
            yield self._data[i : i + chunk_size]

    def close(self) -> None:
        self._data = b""


class LensdbImportStorageBase(LensdbStorageMixin, ImportStorage):
    url_scheme = SCHEME
    # Images are always streamed through Label Studio (its login, same origin, no CORS).
    presign = False
    presign_ttl = 1
    use_blob_urls = True

    constraints = models.TextField(
        _("constraints"),
        null=True,
        blank=True,
        help_text='FindImage constraints as JSON, e.g. {"dataset": ["==", "train"]}',
    )
    limit = models.PositiveIntegerField(
        _("limit"), null=True, blank=True, help_text="Import at most this many images (empty: all)"
    )
    predictions = models.BooleanField(
        _("predictions"),
        default=True,
        help_text="Include existing boxes and polygons as predictions",
    )
    pred_constraints = models.TextField(
        _("pred_constraints"),
        null=True,
        blank=True,
        help_text="Constraints on the boxes and polygons used as predictions (JSON)",
    )
    predictions_readonly = models.BooleanField(
        _("predictions_readonly"),
        default=False,
        help_text="Annotators see predicted regions but cannot move, resize or delete them (default: they can)",
    )
    as_format_jpg = models.BooleanField(
        _("as_format_jpg"), default=False, help_text="Convert images to JPEG on the fly"
    )
    guid_property = models.TextField(
        _("guid_property"),
        null=True,
        blank=True,
        help_text="Image property that identifies an image across databases (empty: _uniqueid)",
    )
    task_data_properties = models.TextField(
        _("task_data_properties"),
        null=True,
        blank=True,
        help_text="Image properties copied into task data, comma-separated",
    )

    @property
    def key_property(self) -> str:
        return str(self.guid_property or "").strip() or UNIQUEID

    def check_fields(self) -> None:
        for name, what in (
            ("constraints", "Image constraints"),
            ("pred_constraints", "Prediction constraints"),
        ):
            try:
                parse_json_field(getattr(self, name), what)
            except ValueError as exc:
                raise StorageFieldError(name, str(exc)) from None

    def check_with_server(self) -> None:
        constraints = parse_json_field(self.constraints, "Image constraints")
        try:
            self.get_client().query(list_images_query(constraints, self.key_property, 1, 0))
        except DatabaseUnavailable:
            raise
        except DatabaseError as exc:
            raise StorageFieldError(
                "constraints", f"The server refused the image constraints: {exc}"
            ) from None
        pred = parse_json_field(self.pred_constraints, "Prediction constraints")
        if pred and self.predictions:
            try:
                self.get_client().query(
                    [
                        {
                            "FindBoundingBox": {
                                "constraints": pred,
                                "blobs": False,
                                "results": {"limit": 1},
                            }
                        }
                    ]
                )
            except DatabaseUnavailable:
                raise
            except DatabaseError as exc:
                raise StorageFieldError(
                    "pred_constraints", f"The server refused these constraints: {exc}"
                ) from None

    def selection_report(self) -> dict:
        """What a sync would bring, for Check Connection; a StorageFieldError when that is no image."""
        constraints = parse_json_field(self.constraints, "Image constraints")
        pred = parse_json_field(self.pred_constraints, "Prediction constraints")
        try:
            response, _ = self.get_client().query(
                Q.selection_count_query(
                    constraints, self.key_property, bool(self.predictions), pred
                )
            )
        except DatabaseError as exc:
            raise StorageFieldError(
                "constraints", f"The server refused the image constraints: {exc}"
            ) from None
        count = Q.parse_selection_count(response)
        images = min(count.images, self.limit) if self.limit else count.images
        where = f"{self.hostname}:{self.port}"
        if images == 0:
            what = "these image constraints select" if constraints else "the database holds"
            keyed = f" with the property {self.key_property}" if self.guid_property else ""
            raise StorageFieldError(
                "constraints",
                f"Connected to {where}, but {what} no image{keyed}: a sync "
                "would create no tasks. Check the constraints, or add images first.",
            )
        detail = f"Connected to {where}: a sync would bring {images} image(s)"
        if self.predictions:
            detail += (
                f" with {count.predictions} model region(s) as predictions ({count.boxes} boxes, "
                f"{count.polygons} polygons{', on all selected images' if self.limit else ''})"
            )
        logger.info("lensdb storage check: %s", detail)
        return {
            "detail": detail + ".",
            "images": images,
            "images_matching": count.images,
            "predictions": count.predictions if self.predictions else 0,
            "boxes": count.boxes,
            "polygons": count.polygons,
        }

    # ---- listing (used by Label Studio's "preview files" endpoint) ----
    def iter_objects(self):
        for page in services().source.iter_image_pages(self):
            yield from page

    def iter_keys(self):
        for obj in self.iter_objects():
            yield obj["key"]

    def get_unified_metadata(self, obj: dict) -> dict:
        return {"key": obj["key"], "last_modified": None, "size": None}

    def get_data(self, key: str):
        raise NotImplementedError(
            "lensdb storages create tasks in batches: see scan_and_create_links"
        )

    def scan_and_create_links(self) -> None:
        services().source.sync_source(self)

    # ---- serving image bytes through /tasks/<id>/resolve/ ----
    def can_resolve_url(self, url: str | None) -> bool:
        parsed = parse_image_uri(url) if isinstance(url, str) else None
        return bool(parsed) and parsed[0] == f"{self.hostname}:{self.port}"

    def generate_http_url(self, url: str) -> str:
        return url  # never presigned; kept for Label Studio code paths that ask

    def get_bytes_stream(self, uri: str, range_header: str | None = None):
        parsed = parse_image_uri(uri)
        if not parsed:
            return None, None, {}
        uniqueid = parsed[1]
        try:
            response, blobs = self.get_client().query(
                image_blob_query(uniqueid, bool(self.as_format_jpg))
            )
        except DatabaseError as exc:
            logger.warning("lensdb image %s: %s", uniqueid, exc)
            return None, None, {}
        if not blobs:
            return None, None, {}
        data = blobs[0]
        size = len(data)
        meta: dict[str, Any] = {
            "ETag": f"{uniqueid}-{'jpg' if self.as_format_jpg else 'raw'}-{size}",
            "StatusCode": 200,
            "ContentLength": size,
        }
        rng = parse_range(range_header, size)  # the gateway's parser: bytes=-500 is the last 500
        if rng and rng != (0, size - 1):
            start, end = rng
            data = data[start : end + 1]
            meta.update(
                StatusCode=206, ContentLength=len(data), ContentRange=f"bytes {start}-{end}/{size}"
            )
        return _BytesStream(data), content_type(blobs[0][:16]), meta

    class Meta:
        abstract = True


class LensdbImportStorage(ProjectStorageMixin, LensdbImportStorageBase):
    class Meta:
        abstract = False


class LensdbImportStorageLink(ImportStorageLink):
    # The related name must start with io_storages_ for Task.get_storage_link() to find it.
    task = models.OneToOneField(
        "tasks.Task", on_delete=models.CASCADE, related_name="io_storages_lensdbimportstoragelink"
    )
    storage = models.ForeignKey(LensdbImportStorage, on_delete=models.CASCADE, related_name="links")


class LensdbExportStorage(LensdbStorageMixin, ExportStorage):
    # Which process currently sends this storage's outbox, and until when (see outbox.flush).
    outbox_lease_until = models.DateTimeField(null=True, blank=True, editable=False)
    outbox_lease_owner = models.CharField(max_length=64, null=True, blank=True, editable=False)

    def save_annotation(self, annotation) -> None:
        target = services().target
        target.enqueue_save(self, annotation)
        target.flush(self)

    def delete_annotation(self, annotation) -> None:
        target = services().target
        target.enqueue_delete(self, annotation.id, annotation.project_id)
        target.flush(self)

    def save_all_annotations(self) -> None:
        services().target.export_missing(self)

    def save_only_new_annotations(self) -> None:
        self.save_all_annotations()

    class Meta:
        abstract = False


class LensdbExportStorageLink(ExportStorageLink):
    storage = models.ForeignKey(LensdbExportStorage, on_delete=models.CASCADE, related_name="links")


class LensdbOutbox(models.Model):
    """A change waiting to be written to the database, kept in Label Studio's own database.

    Rows are applied in id order per storage; a row is deleted once the database confirmed it.
    """

    SAVE, DELETE = "save", "delete"

    storage = models.ForeignKey(
        LensdbExportStorage, on_delete=models.CASCADE, related_name="outbox"
    )
    action = models.CharField(max_length=16)
    annotation_id = models.IntegerField(db_index=True)
    query = models.JSONField(help_text="The transaction to send, built when the change happened")
    created_at = models.DateTimeField(auto_now_add=True)
    attempts = models.PositiveIntegerField(default=0)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(null=True, blank=True)
    rejected = models.BooleanField(
        default=False, help_text="The database refused it; retried only on Sync"
    )

    class Meta:
        ordering = ["id"]


class LensdbInstallation(models.Model):
    """One row: a random id for this Label Studio database, written as LS_instance on annotations.

    Annotation and project ids repeat across Label Studio installations; this tells apart the
    annotations of installations that share one lensdb.
    """

    instance = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)


_instance_cache: dict[str, str] = {}


def installation_id() -> str:
    """LENSDB_LS_INSTANCE if set (to keep an id across a database move), else this database's own id."""
    import uuid

    from django.conf import settings

    if settings.LENSDB.ls_instance:
        return settings.LENSDB.ls_instance
    if "id" not in _instance_cache:
        # A fixed primary key: concurrent first calls in several processes agree on one row.
        row, _ = LensdbInstallation.objects.get_or_create(
            pk=1, defaults={"instance": uuid.uuid4().hex}
        )
        _instance_cache["id"] = row.instance
    return _instance_cache["id"]
