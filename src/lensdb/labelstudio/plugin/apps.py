"""Django app config of the Label Studio plugin."""

from __future__ import annotations

from django.apps import AppConfig


class LensdbLabelStudioConfig(AppConfig):
    name = "lensdb.labelstudio.plugin"
    label = "lensdb_labelstudio"
    verbose_name = "lensdb storage for Label Studio"
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        from lensdb.labelstudio.plugin import models, outbox, signals, sync  # noqa: F401 - signals registers receivers

        models.wire(models.Services(source=sync, target=outbox))

        if outbox.should_start_loop_at_boot():
            outbox.ensure_retry_loop()
