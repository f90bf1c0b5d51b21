"""The pieces that make a dead worker's job come back exactly once, one at a time: the
unique constraint on unfinished replies, leases, the recovery sweep's conditional
requeues and its bound on jobs that keep killing their workers."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.utils import timezone

from config.jobs import Lease
from grading import proposals, submissions
from grading.models import WORKER_DIED_ERROR, Proposal
from material import services as material_services
from material.models import WORKER_DIED_FAILURE, Chunk, Material
from tests.grading.workflow_factories import ESSAY
from tutor import conversations
from tutor.models import Message

pytestmark = pytest.mark.django_db


def a_moment_ago() -> datetime:
    return timezone.now() - timedelta(seconds=1)


@pytest.fixture
def sent(monkeypatch) -> list[int]:
    """Reply ids whose task was sent (on commit)."""
    ids: list[int] = []
    monkeypatch.setattr("tutor.conversations._enqueue_reply", ids.append)
    return ids


@pytest.fixture
def conversation(student, course):
    return conversations.conversation_start(course=course, learner=student)


# --- replies --------------------------------------------------------------------------


def test_the_database_refuses_a_second_unfinished_reply_in_a_conversation(conversation):
    Message.objects.create(conversation=conversation, role="assistant", status="pending")
    with pytest.raises(IntegrityError), transaction.atomic():
        Message.objects.create(conversation=conversation, role="assistant", status="streaming")
    # Finished replies are not limited.
    Message.objects.create(conversation=conversation, role="assistant", status="failed")


def test_a_failed_reply_cannot_be_retried_while_another_is_being_written(
    conversation, student, sent
):
    _q, first = conversations.message_post(conversation=conversation, learner=student, text="A")
    Message.objects.filter(pk=first.pk).update(status=Message.Status.FAILED)
    _q, second = conversations.message_post(conversation=conversation, learner=student, text="B")
    with pytest.raises(ValidationError, match="still answering"):
        conversations.reply_retry(reply=first, learner=student)
    assert Message.objects.get(pk=first.pk).status == Message.Status.FAILED

    Message.objects.filter(pk=second.pk).update(status=Message.Status.DONE)
    assert conversations.reply_retry(reply=first, learner=student).status == "pending"
    assert sent == [first.pk, second.pk, first.pk]


def test_a_waiting_reply_is_sent_again_once_its_lease_lapses_and_not_on_every_sweep(
    conversation, student, sent
):
    _q, reply = conversations.message_post(conversation=conversation, learner=student, text="A")
    assert sent == [reply.pk]
    assert conversations.replies_recover() == (0, 0)  # its task has time to arrive

    Message.objects.filter(pk=reply.pk).update(lease_until=a_moment_ago())
    assert conversations.replies_recover() == (0, 1)
    assert sent == [reply.pk, reply.pk]
    assert conversations.replies_recover() == (0, 0)  # the lease starts again
    assert Message.objects.get(pk=reply.pk).status == Message.Status.PENDING


def test_a_reply_whose_worker_stopped_renewing_its_lease_is_failed_with_its_text(
    conversation, student, sent
):
    _q, reply = conversations.message_post(conversation=conversation, learner=student, text="A")
    assert conversations.reply_claim(message_id=reply.pk)
    assert not conversations.reply_claim(message_id=reply.pk)  # a redelivery does nothing
    assert conversations.replies_recover() == (0, 0)  # alive: its lease holds

    Message.objects.filter(pk=reply.pk).update(lease_until=a_moment_ago())
    assert conversations.replies_recover() == (1, 0)
    reply.refresh_from_db()
    assert (reply.status, reply.error) == (Message.Status.FAILED, conversations.STALE_MESSAGE)


# --- materials ------------------------------------------------------------------------


def _processing_material(course, *, attempts: int) -> Material:
    material = material_services.material_upload(
        course=course, file=ContentFile(b"# Cells\n\nCells are small.", name="c.md"), enqueue=False
    )
    Material.objects.filter(pk=material.pk).update(
        status=Material.Status.PROCESSING,
        claimed_at=a_moment_ago(),
        lease_until=a_moment_ago(),
        attempts=attempts,
    )
    return material


def test_a_material_whose_worker_died_is_queued_again(course, settings, tmp_path, monkeypatch):
    settings.MEDIA_ROOT = tmp_path
    sent: list[int] = []
    monkeypatch.setattr(material_services, "_enqueue", sent.append)
    material = _processing_material(course, attempts=1)
    assert material_services.materials_recover() == 1
    material.refresh_from_db()
    assert (material.status, material.claimed_at) == (Material.Status.QUEUED, None)
    assert sent == [material.pk]
    assert material_services.materials_recover() == 0  # queued, with a fresh lease


def test_a_material_that_keeps_killing_its_workers_is_failed_not_retried(
    course, settings, tmp_path, monkeypatch
):
    settings.MEDIA_ROOT = tmp_path
    sent: list[int] = []
    monkeypatch.setattr(material_services, "_enqueue", sent.append)
    material = _processing_material(course, attempts=settings.WORK_MAX_ATTEMPTS)
    Chunk.objects.create(
        material=material,
        course=course,
        position=0,
        text="old",
        text_hash="x",
        embedding=[0.0] * settings.EMBEDDING_DIMENSIONS,
        word_count=1,
    )
    assert material_services.materials_recover() == 0
    material.refresh_from_db()
    assert material.status == Material.Status.FAILED
    assert material.failure_reason == str(WORKER_DIED_FAILURE)
    assert not material.chunks.exists()
    assert sent == []
    # A redelivered task finds nothing to do either.
    assert material_services.material_ingest(material_id=material.pk) is None


# --- grade proposals ------------------------------------------------------------------


def test_a_proposal_taken_over_from_a_dead_worker_ignores_that_worker_if_it_returns(
    student, assignment
):
    submission = submissions.submission_submit(assignment=assignment, learner=student, text=ESSAY)
    proposal = Proposal.objects.create(submission=submission, rubric_version="v", source="llm")
    dead = proposals.proposal_claim(proposal_id=proposal.pk)
    assert dead is not None
    Proposal.objects.filter(pk=proposal.pk).update(lease_until=a_moment_ago())

    assert proposals.proposals_recover() == 1
    assert Proposal.objects.get(pk=proposal.pk).status == Proposal.Status.QUEUED
    alive = proposals.proposal_claim(proposal_id=proposal.pk)
    assert alive is not None and alive != dead
    assert Proposal.objects.get(pk=proposal.pk).attempts == 2
    # The dead worker's claim matches nothing: it can neither finish nor renew.
    assert not dead.rows.exists()
    assert alive.rows.exists()


def test_a_proposal_that_keeps_killing_its_workers_is_failed_for_the_teacher(
    student, assignment, settings
):
    submission = submissions.submission_submit(assignment=assignment, learner=student, text=ESSAY)
    proposal = Proposal.objects.create(
        submission=submission,
        rubric_version="v",
        source="llm",
        status=Proposal.Status.RUNNING,
        claimed_at=a_moment_ago(),
        lease_until=a_moment_ago(),
        attempts=settings.WORK_MAX_ATTEMPTS,
    )
    assert proposals.proposal_claim(proposal_id=proposal.pk) is None
    proposal.refresh_from_db()
    assert proposal.status == Proposal.Status.FAILED
    assert proposal.error == WORKER_DIED_ERROR


# --- the lease itself -----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_lease_is_renewed_while_the_work_runs_and_is_lost_when_the_row_moves_on(
    student, assignment
):
    submission = submissions.submission_submit(assignment=assignment, learner=student, text=ESSAY)
    proposal = Proposal.objects.create(submission=submission, rubric_version="v", source="llm")
    rows = proposals.proposal_claim(proposal_id=proposal.pk).rows
    claimed_until = Proposal.objects.get(pk=proposal.pk).lease_until  # a full lease
    with Lease(rows, seconds=2) as lease:
        # A renewal every 0.5 s; on a busy machine the first may come late, so wait for it.
        deadline = time.monotonic() + 10
        renewed_until = claimed_until
        while renewed_until == claimed_until and time.monotonic() < deadline:
            time.sleep(0.05)
            renewed_until = Proposal.objects.get(pk=proposal.pk).lease_until
        assert timezone.now() < renewed_until < claimed_until
        assert not lease.lost
        Proposal.objects.filter(pk=proposal.pk).update(status=Proposal.Status.DONE)
        deadline = time.monotonic() + 10
        while not lease.lost and time.monotonic() < deadline:
            time.sleep(0.05)
        assert lease.lost
