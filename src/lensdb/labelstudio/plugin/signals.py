"""Annotation changes reach lensdb target storages through the outbox."""

from __future__ import annotations

import logging

from django.db.models.signals import post_save, pre_delete
from django.dispatch import receiver
from tasks.models import Annotation

from lensdb.labelstudio.plugin import outbox
from lensdb.labelstudio.plugin.models import LensdbExportStorage

logger = logging.getLogger(__name__)


@receiver(post_save, sender=Annotation)
def annotation_saved(sender, instance: Annotation, **kwargs) -> None:
    for storage in LensdbExportStorage.objects.filter(project_id=instance.project_id):
        outbox.enqueue_save(storage, instance)
        outbox.schedule_flush(storage)


@receiver(pre_delete, sender=Annotation)
def annotation_deleted(sender, instance: Annotation, **kwargs) -> None:
    for storage in LensdbExportStorage.objects.filter(project_id=instance.project_id):
        if storage.can_delete_objects is False:
            continue  # the user chose to keep deleted annotations in the database
        outbox.enqueue_delete(storage, instance.id, instance.project_id)
        outbox.schedule_flush(storage)
