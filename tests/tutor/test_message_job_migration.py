"""The migration that makes Message a job (tutor 0006) keeps every row: the claim's time
moves from ``started`` to ``claimed_at`` with its value, and a reply being written as it
runs counts its one claim, so a redelivered task cannot take it over."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("latest_schema_afterwards"),
]

BEFORE = [("tutor", "0005_material_steps_and_retryable_failures")]
AFTER = [("tutor", "0006_message_is_a_job")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def test_replies_keep_their_values_through_the_rename(student, course):
    old = migrate(BEFORE)
    try:
        Conversation = old.get_model("tutor", "Conversation")
        Message = old.get_model("tutor", "Message")
        conversation = Conversation.objects.create(course_id=course.pk, learner_id=student.pk)
        started = timezone.now() - timedelta(minutes=2)
        writing = Message.objects.create(
            conversation=conversation, role="assistant", status="streaming", started=started
        )
        done = Message.objects.create(
            conversation=conversation, role="assistant", status="done", started=started, text="Hi"
        )
    finally:
        new = migrate(AFTER)
    Message = new.get_model("tutor", "Message")
    rows = {m.pk: m for m in Message.objects.filter(pk__in=[writing.pk, done.pk])}
    assert (rows[writing.pk].claimed_at, rows[writing.pk].attempts) == (started, 1)
    assert (rows[done.pk].claimed_at, rows[done.pk].attempts, rows[done.pk].text) == (
        started,
        0,
        "Hi",
    )
