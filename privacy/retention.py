"""Removing what is kept longer than the school's retention periods allow.

``RETENTION_DAYS_CONVERSATIONS`` (tutor conversations, by their last activity) and
``RETENTION_DAYS_UPLOADS`` (files a person uploaded, by the row's creation) are read from
settings; 0 keeps them for ever.
"""

from __future__ import annotations

import datetime as dt

from django.apps import apps
from django.conf import settings
from django.db import models, transaction
from django.db.models.fields.files import FieldFile
from django.utils import timezone

from config.privacy_registry import DETACH, REGISTRY
from privacy.personal_data import file_fields
from tutor.models import Conversation, Message
from tutor.streams import reply_stream_reset

DEFAULT_DAYS_CONVERSATIONS = 365
DEFAULT_DAYS_UPLOADS = 180
_CREATED = ("created", "created_at", "submitted_at")


def _cutoff(name: str, default: int, now: dt.datetime | None) -> dt.datetime | None:
    days = int(getattr(settings, name, default) or 0)
    return (now or timezone.now()) - dt.timedelta(days=days) if days > 0 else None


def _created_field(model: type[models.Model]) -> str | None:
    names = {f.name for f in model._meta.concrete_fields}
    return next((name for name in _CREATED if name in names), None)


def _with_file(rows: models.QuerySet, name: str) -> models.QuerySet:
    return rows.exclude(**{f"{name}__isnull": True}).exclude(**{name: ""})


@transaction.atomic
def retention_conversations_purge(*, now: dt.datetime | None = None) -> int:
    """Delete conversations idle past the retention period, with their files and streams."""
    cutoff = _cutoff("RETENTION_DAYS_CONVERSATIONS", DEFAULT_DAYS_CONVERSATIONS, now)
    if cutoff is None:
        return 0
    old = list(Conversation.objects.filter(updated__lt=cutoff).values_list("pk", flat=True))
    messages = Message.objects.filter(conversation__in=old)
    message_ids = list(messages.values_list("pk", flat=True))
    files = [
        getattr(message, field.name)
        for field in file_fields(Message)
        for message in _with_file(messages, field.name)
    ]
    Conversation.objects.filter(pk__in=old).delete()

    def outside() -> None:
        for file in files:
            file.storage.delete(file.name)
        for message_id in message_ids:
            reply_stream_reset(message_id=message_id)

    transaction.on_commit(outside)
    return len(old)


@transaction.atomic
def retention_uploads_purge(*, now: dt.datetime | None = None) -> int:
    """Remove people's uploaded files older than the retention period; the rows stay."""
    cutoff = _cutoff("RETENTION_DAYS_UPLOADS", DEFAULT_DAYS_UPLOADS, now)
    if cutoff is None:
        return 0
    files: list[FieldFile] = []
    for label, rule in REGISTRY.items():
        model = apps.get_model(label)
        created = _created_field(model)
        if rule.erase == DETACH or created is None:
            continue
        for field in file_fields(model):
            rows = _with_file(
                model._default_manager.filter(**{f"{created}__lt": cutoff}), field.name
            )
            files.extend(getattr(row, field.name) for row in rows)
            rows.update(**{field.name: ""})

    def outside() -> None:
        for file in files:
            if file.name:
                file.storage.delete(file.name)

    transaction.on_commit(outside)
    return len(files)
