"""Retention periods: old conversations and old uploads go, recent ones stay."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.files.base import ContentFile
from django.db.models import FileField
from django.utils import timezone

pytestmark = pytest.mark.django_db(transaction=True)


def _upload_field(model) -> str:
    return next(f.name for f in model._meta.concrete_fields if isinstance(f, FileField))


@pytest.fixture
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def _conversation(*, learner, course, days_old: int, with_upload: bool = False):
    from tutor.models import Conversation, Message
    from tutor.streams import reply_stream_append

    conversation = Conversation.objects.create(course=course, learner=learner)
    message = Message.objects.create(conversation=conversation, role="user", text="hello")
    if with_upload:
        getattr(message, _upload_field(Message)).save(
            "photo.txt", ContentFile(b"pixels"), save=True
        )
    reply_stream_append(message_id=message.pk, text="partial")
    then = timezone.now() - dt.timedelta(days=days_old)
    Conversation.objects.filter(pk=conversation.pk).update(updated=then)
    Message.objects.filter(pk=message.pk).update(created=then)
    return conversation, message


def test_conversations_idle_past_the_period_are_deleted_with_streams_and_files(
    settings, media_root, student, course
):
    from privacy.tasks import retention_purge
    from tutor.models import Conversation
    from tutor.streams import reply_stream_text

    settings.RETENTION_DAYS_CONVERSATIONS = 30
    old, old_message = _conversation(learner=student, course=course, days_old=31, with_upload=True)
    recent, _ = _conversation(learner=student, course=course, days_old=29)

    assert retention_purge()["conversations"] == 1

    assert list(Conversation.objects.values_list("pk", flat=True)) == [recent.pk]
    assert reply_stream_text(message_id=old_message.pk) == ""
    assert not [p for p in media_root.rglob("*") if p.is_file()]
    assert retention_purge()["conversations"] == 0


def test_old_uploads_are_removed_but_the_message_stays(settings, media_root, student, course):
    from privacy.retention import retention_uploads_purge
    from tutor.models import Message

    settings.RETENTION_DAYS_CONVERSATIONS = 0
    settings.RETENTION_DAYS_UPLOADS = 7
    _, old = _conversation(learner=student, course=course, days_old=8, with_upload=True)
    _, recent = _conversation(learner=student, course=course, days_old=6, with_upload=True)
    field = _upload_field(Message)

    assert retention_uploads_purge() == 1

    assert not getattr(Message.objects.get(pk=old.pk), field)
    kept = getattr(Message.objects.get(pk=recent.pk), field)
    assert kept and kept.storage.exists(kept.name)
    assert len([p for p in media_root.rglob("*") if p.is_file()]) == 1


def test_a_period_of_zero_keeps_everything(settings, student, course):
    from privacy.retention import retention_conversations_purge
    from tutor.models import Conversation

    settings.RETENTION_DAYS_CONVERSATIONS = 0
    _conversation(learner=student, course=course, days_old=10_000)

    assert retention_conversations_purge() == 0
    assert Conversation.objects.count() == 1
