"""Plant a unique string everywhere a person's data lives; export finds it, erasure leaves none."""

from __future__ import annotations

import io
import uuid
import zipfile

import pytest
import redis
from django.apps import apps
from django.core.files.base import ContentFile
from django.db import connection
from django.db.models import FileField

pytestmark = pytest.mark.django_db(transaction=True)


def _export_text(data: bytes) -> str:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return "\n".join(archive.read(name).decode() for name in archive.namelist())


def _database_text() -> str:
    parts = []
    with connection.cursor() as cursor:
        for model in apps.get_models(include_auto_created=True):
            table = connection.ops.quote_name(model._meta.db_table)
            cursor.execute(f"SELECT t::text FROM {table} AS t")  # noqa: S608 - table names
            parts.extend(row[0] for row in cursor.fetchall())
    return "\n".join(parts)


def _redis_text(url: str) -> str:
    client = redis.Redis.from_url(url, decode_responses=True)
    parts = []
    try:
        for key in client.scan_iter(count=1000):
            kind = client.type(key)
            value = {
                "string": lambda k: client.get(k),
                "stream": lambda k: client.xrange(k),
                "hash": lambda k: client.hgetall(k),
                "list": lambda k: client.lrange(k, 0, -1),
                "set": lambda k: client.smembers(k),
                "zset": lambda k: client.zrange(k, 0, -1),
            }.get(kind, lambda k: "")(key)
            parts.append(f"{key} {value!r}")
    finally:
        client.close()
    return "\n".join(parts)


def _media_text(root) -> str:
    return "\n".join(
        f"{path} {path.read_bytes().decode(errors='replace')}"
        for path in root.rglob("*")
        if path.is_file()
    )


@pytest.fixture
def canary():
    return f"canary-{uuid.uuid4().hex}"


@pytest.fixture
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def planted(canary, student, teacher, course, media_root):
    """The student's data in every table that holds it, each place with its own suffix."""
    from grading.models import Assignment, RegradeRequest, Review, Submission
    from learners.models import LearnerProfile
    from tutor.models import Conversation, Feedback, Memory, Message
    from tutor.streams import reply_stream_append

    LearnerProfile.objects.create(
        user=student, goals=f"{canary}-goals", interests=f"{canary}-interests"
    )
    conversation = Conversation.objects.create(
        course=course, learner=student, title=f"{canary}-title"
    )
    question = Message.objects.create(
        conversation=conversation, role="user", text=f"{canary}-question"
    )
    # The student's upload: whichever file field the message has (an attached image).
    upload = next(f for f in Message._meta.concrete_fields if isinstance(f, FileField))
    getattr(question, upload.name).save(
        "photo.txt", ContentFile(f"{canary}-upload".encode()), save=True
    )
    reply = Message.objects.create(
        conversation=conversation, role="assistant", text=f"{canary}-reply"
    )
    Feedback.objects.create(message=reply, rating=1, comment=f"{canary}-feedback")
    Memory.objects.create(
        learner=student, course=course, conversation=conversation, summary=f"{canary}-memory"
    )
    reply_stream_append(message_id=reply.pk, text=f"{canary}-stream")
    released_on = Assignment.objects.create(course=course, title="Released essay")
    draft_on = Assignment.objects.create(course=course, title="Ungraded essay")
    released = Submission.objects.create(
        assignment=released_on, learner=student, text=f"{canary}-released-essay"
    )
    Review.objects.create(
        submission=released,
        status=Review.Status.RELEASED,
        released={"total": "7"},
        flags=[{"code": "instructions", "excerpt": f"{canary}-excerpt"}],
        released_by=teacher,
    )
    RegradeRequest.objects.create(submission=released, comment=f"{canary}-regrade")
    Submission.objects.create(assignment=draft_on, learner=student, text=f"{canary}-draft")
    return released


PLACES = (
    "goals",
    "interests",
    "title",
    "question",
    "reply",
    "feedback",
    "memory",
    "released-essay",
    "regrade",
    "draft",
    "upload",
)


def test_the_export_holds_every_planted_value(canary, planted, student):
    from learners.models import AuditEvent
    from privacy.personal_data import privacy_export

    text = _export_text(privacy_export(user=student))

    missing = [place for place in PLACES if f"{canary}-{place}" not in text]
    assert not missing
    assert AuditEvent.objects.filter(
        action=AuditEvent.Action.DATA_EXPORTED, target_id=str(student.pk)
    ).exists()


def test_erasure_leaves_the_canary_nowhere_but_keeps_the_released_grade(
    canary, planted, student, staff_user, settings, media_root
):
    from grading.models import Review, Submission, SubmissionVector
    from learners.models import AuditEvent, User
    from privacy.personal_data import privacy_erase, privacy_export

    # The scorer's reading of the essay is binary, so the canary cannot show in it.
    SubmissionVector.objects.create(submission=planted, reader="test", data=b"\x00" * 8)
    privacy_export(user=student)
    assert canary in _database_text()
    assert canary in _redis_text(settings.REDIS_URL)
    assert canary in _media_text(media_root)

    privacy_erase(user=student, actor=staff_user)

    assert canary not in _database_text()
    assert canary not in _redis_text(settings.REDIS_URL)
    assert canary not in _media_text(media_root)
    assert not User.objects.filter(username=student.username).exists()
    kept = Submission.objects.get(pk=planted.pk)
    assert kept.learner.username.startswith("erased-")
    assert not kept.learner.is_active
    assert not kept.learner.has_usable_password()
    assert Review.objects.get(submission=kept).released == {"total": "7"}
    assert not SubmissionVector.objects.exists()
    erased = AuditEvent.objects.get(action=AuditEvent.Action.ACCOUNT_ERASED)
    assert erased.actor_id == staff_user.pk
    assert student.username not in str(AuditEvent.objects.filter(pk=erased.pk).values().first())
