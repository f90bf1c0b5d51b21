"""Practice questions written by the language model, as a tracked job.

A teacher's request becomes a ``QuestionGeneration`` row (queued, with a lease) before its
task is sent, once the transaction commits. The task claims the row with a conditional
update and holds a lease while the model writes (``config/leases.py``), so a redelivered
task writes nothing twice and a dead worker's job is found by the recovery sweep
(``generations_recover``, run by ``config/recovery.py``). A model that is unreachable is
tried again later, a bounded number of times; a permanent failure (a parameter or schema
the server refuses, material over its context) fails the job at once. Either way the
concepts page shows the job's state, and why it failed, where the teacher looks.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from config.celery import enqueue_on_commit
from config.leases import lapsed, lease_until, queued_until
from learners.models import Concept
from learning import practice
from learning.concepts import material_texts
from learning.models import PracticeQuestion, QuestionGeneration

if TYPE_CHECKING:
    from learners.models import Course

logger = logging.getLogger(__name__)

WORKER_DIED_ERROR = "WorkerLost: the worker writing these questions stopped too many times"
# How many of a concept's latest jobs the concepts page shows.
GENERATIONS_SHOWN = 5


def generation_request(*, concept: Concept, requested_by, text: str = "") -> QuestionGeneration:
    """Queue the writing of questions for ``concept`` (from ``text``, else its material)."""
    from learning.tasks import practice_questions_generate

    with transaction.atomic():
        generation = QuestionGeneration.objects.create(
            concept=concept, requested_by=requested_by, text=text, lease_until=queued_until()
        )
        # If the broker is away the row stays queued; the recovery sweep sends it later.
        enqueue_on_commit(practice_questions_generate, generation.pk)
    return generation


def _claimable(now: datetime) -> Q:
    died = Q(status=QuestionGeneration.Status.RUNNING) & lapsed(now=now)
    return Q(status=QuestionGeneration.Status.QUEUED) | (
        died & Q(attempts__lt=settings.WORK_MAX_ATTEMPTS)
    )


def generation_claim(*, generation_id: int) -> datetime | None:
    """Take a queued job (or one whose worker died) for this worker: the claim's token
    (its ``started_at``), or None when there is nothing to take."""
    now = timezone.now()
    if QuestionGeneration.objects.filter(_claimable(now), pk=generation_id).update(
        status=QuestionGeneration.Status.RUNNING,
        started_at=now,
        lease_until=lease_until(now=now),
        attempts=F("attempts") + 1,
    ):
        return now
    return None


def generation_claimed(*, generation_id: int, claimed_at: datetime):
    """The job while this worker's claim holds (for its lease)."""
    return QuestionGeneration.objects.filter(
        pk=generation_id, status=QuestionGeneration.Status.RUNNING, started_at=claimed_at
    )


def generation_run(*, generation_id: int, claimed_at: datetime) -> int:
    """Write the questions of a claimed job; returns how many were stored. LLM errors
    propagate: the task decides whether to try again."""
    generation = QuestionGeneration.objects.select_related("concept__course").get(pk=generation_id)
    concept = generation.concept
    texts = (
        [generation.text]
        if generation.text.strip()
        else material_texts(course=concept.course, concept=concept)
    )
    texts = [t for t in texts if t and t.strip()]
    created: list[PracticeQuestion] = []
    usage: dict = {}
    if texts:
        drafts, usage = practice.questions_draft_llm(
            concept=concept,
            texts=texts,
            limit=practice.QUESTIONS_PER_GENERATION,
            requested_by_id=generation.requested_by_id,
        )
        created = practice.questions_save(
            concept=concept, drafts=drafts, origin=PracticeQuestion.Origin.LLM, generation=usage
        )
    generation_claimed(generation_id=generation_id, claimed_at=claimed_at).update(
        status=QuestionGeneration.Status.DONE,
        questions_created=len(created),
        usage=usage,
        error="",
        finished_at=timezone.now(),
        lease_until=None,
    )
    return len(created)


def generation_requeue(*, generation_id: int, error: str, delay: float) -> None:
    """Back to the queue for the task's retry in ``delay`` seconds."""
    QuestionGeneration.objects.filter(
        pk=generation_id, status=QuestionGeneration.Status.RUNNING
    ).update(
        status=QuestionGeneration.Status.QUEUED,
        error=error[:2000],
        lease_until=queued_until(delay=delay),
    )


def generation_fail(*, generation_id: int, error: str) -> None:
    QuestionGeneration.objects.filter(pk=generation_id).exclude(
        status=QuestionGeneration.Status.DONE
    ).update(
        status=QuestionGeneration.Status.FAILED,
        error=error[:2000],
        finished_at=timezone.now(),
        lease_until=None,
    )


def generations_recover() -> int:
    """Queue again the jobs whose worker died or whose task message was lost; fail those
    whose workers died on them too often. Returns how many were queued again."""
    from learning.tasks import practice_questions_generate

    now = timezone.now()
    lost = Q(status=QuestionGeneration.Status.QUEUED) & lapsed(now=now)
    died = Q(status=QuestionGeneration.Status.RUNNING) & lapsed(now=now)
    QuestionGeneration.objects.filter(died, attempts__gte=settings.WORK_MAX_ATTEMPTS).update(
        status=QuestionGeneration.Status.FAILED,
        error=WORKER_DIED_ERROR,
        finished_at=now,
        lease_until=None,
    )
    requeued = 0
    for pk in QuestionGeneration.objects.filter(lost | died).values_list("pk", flat=True):
        with transaction.atomic():
            if QuestionGeneration.objects.filter(lost | died, pk=pk).update(
                status=QuestionGeneration.Status.QUEUED, lease_until=queued_until(now=now)
            ):
                logger.warning("question generation %s had no live worker; queued again", pk)
                enqueue_on_commit(practice_questions_generate, pk)
                requeued += 1
    return requeued


def generations_recent(*, course: Course) -> list[QuestionGeneration]:
    """The course's latest jobs, for the concepts page."""
    return list(
        QuestionGeneration.objects.filter(concept__course=course)
        .select_related("concept")
        .order_by("-created_at")[: GENERATIONS_SHOWN * 4]
    )
