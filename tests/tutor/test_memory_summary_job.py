"""The writing of a conversation's memory is a job of the job machine (``config/jobs.py``):
one row per conversation, made when the memory is asked for, claimed by one task, sent
again by the recovery sweep when its task message was lost, queued again after a
failure when the conversation next ends."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from config.recovery import work_recover
from tutor import conversations
from tutor.models import Memory, MemorySummary, Message

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(monkeypatch) -> list[int]:
    """Conversation ids whose memory task was sent (on commit)."""
    ids: list[int] = []
    monkeypatch.setattr(
        "tutor.conversation_tasks.memory_write.apply_async",
        lambda args, **options: ids.append(*args),
    )
    return ids


@pytest.fixture
def talked(conversation):
    Message.objects.create(conversation=conversation, role="user", text="What is ATP?")
    Message.objects.create(
        conversation=conversation, role="assistant", text="A molecule.", status="done"
    )
    return conversation


def _end(conversation, learner, capture):
    with capture(execute=True):
        conversations.conversation_end(conversation=conversation, learner=learner)


def a_moment_ago():
    return timezone.now() - timedelta(seconds=1)


def test_ending_a_conversation_makes_one_job_and_sends_its_task_once(
    talked, student, sent, django_capture_on_commit_callbacks
):
    _end(talked, student, django_capture_on_commit_callbacks)
    _end(talked, student, django_capture_on_commit_callbacks)
    job = MemorySummary.objects.get(conversation=talked)
    assert (job.status, job.attempts) == (MemorySummary.Status.QUEUED, 0)
    assert job.lease_until > timezone.now()  # by when its task should have come
    assert sent == [talked.pk]


def test_the_task_writes_the_memory_once_however_often_it_is_delivered(
    talked, student, sent, django_capture_on_commit_callbacks
):
    _end(talked, student, django_capture_on_commit_callbacks)
    memory = conversations.memory_write(conversation_id=talked.pk)
    assert memory is not None and memory.summary
    assert conversations.memory_write(conversation_id=talked.pk) is None  # a redelivery
    assert Memory.objects.filter(conversation=talked).count() == 1
    job = MemorySummary.objects.get(conversation=talked)
    assert (job.status, job.attempts, job.lease_until) == ("done", 1, None)
    talked.refresh_from_db()
    assert talked.summarized_at is not None
    # Ended again, a summarised conversation asks for nothing more.
    _end(talked, student, django_capture_on_commit_callbacks)
    assert sent == [talked.pk]


def test_a_lost_task_is_sent_again_by_the_recovery_sweep_once_its_lease_lapses(
    talked, student, sent, django_capture_on_commit_callbacks
):
    _end(talked, student, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        assert work_recover()["memory_summaries"] == 0  # its task has time to arrive
    MemorySummary.objects.filter(conversation=talked).update(lease_until=a_moment_ago())
    with django_capture_on_commit_callbacks(execute=True):
        assert work_recover()["memory_summaries"] == 1
    assert sent == [talked.pk, talked.pk]
    assert conversations.memory_write(conversation_id=talked.pk) is not None


def test_a_failed_summary_is_queued_again_when_the_conversation_next_ends(
    talked, student, sent, django_capture_on_commit_callbacks
):
    _end(talked, student, django_capture_on_commit_callbacks)
    MemorySummary.objects.filter(conversation=talked).update(
        status=MemorySummary.Status.FAILED, attempts=1, error="RuntimeError()", lease_until=None
    )
    _end(talked, student, django_capture_on_commit_callbacks)
    job = MemorySummary.objects.get(conversation=talked)
    assert (job.status, job.attempts) == (MemorySummary.Status.QUEUED, 0)
    assert sent == [talked.pk, talked.pk]


def test_a_summary_that_keeps_killing_its_workers_fails_and_writes_nothing(
    talked, student, sent, settings, django_capture_on_commit_callbacks
):
    _end(talked, student, django_capture_on_commit_callbacks)
    MemorySummary.objects.filter(conversation=talked).update(
        status=MemorySummary.Status.RUNNING,
        claimed_at=a_moment_ago(),
        lease_until=a_moment_ago(),
        attempts=settings.WORK_MAX_ATTEMPTS,
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert work_recover()["memory_summaries"] == 0
    job = MemorySummary.objects.get(conversation=talked)
    assert (job.status, job.error) == (MemorySummary.Status.FAILED, MemorySummary.LOST_ERROR)
    assert conversations.memory_write(conversation_id=talked.pk) is None
    assert not Memory.objects.exists()


def test_a_task_sent_before_summaries_were_jobs_still_writes_the_memory_once(talked):
    assert not MemorySummary.objects.exists()
    assert conversations.memory_write(conversation_id=talked.pk) is not None
    assert conversations.memory_write(conversation_id=talked.pk) is None
    assert Memory.objects.count() == 1


def test_a_task_of_a_conversation_summarised_before_summaries_were_jobs_does_nothing(talked):
    type(talked).objects.filter(pk=talked.pk).update(summarized_at=timezone.now())
    assert conversations.memory_write(conversation_id=talked.pk) is None
    assert not MemorySummary.objects.exists() and not Memory.objects.exists()
