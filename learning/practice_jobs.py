"""Practice questions written by the language model, as a tracked job.

A teacher's request becomes a ``QuestionGeneration`` row (queued, with a lease) before its
task is sent, once the transaction commits. The task claims the row with a conditional
update and holds a lease while the model writes (the job machine, ``config/jobs.py``), so
a redelivered task writes nothing twice and a dead worker's job is found by the recovery
sweep (``generations_recover``, run by ``config/recovery.py``). A model that is
unreachable is tried again later, a bounded number of times; a permanent failure (a
parameter or schema the server refuses, material over its context) fails the job at once.
Either way the concepts page shows the job's state, and why it failed, where the teacher
looks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone

from config.celery import enqueue_on_commit
from config.jobs import Claim, queued_until
from learners.models import Concept
from learning import practice
from learning.concepts import material_texts
from learning.models import PracticeQuestion, QuestionGeneration

if TYPE_CHECKING:
    from learners.models import Course


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


def generation_claim(*, generation_id: int) -> Claim | None:
    """Take a queued job (or one whose worker died) for this worker: the claim, or None
    when there is nothing to take (a job whose workers died on it too often is failed)."""
    return QuestionGeneration.objects.claim(generation_id)


def generation_run(*, claim: Claim) -> int:
    """Write the questions of a claimed job; returns how many were stored. LLM errors
    propagate: the task decides whether to try again."""
    generation = QuestionGeneration.objects.select_related("concept__course").get(pk=claim.pk)
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
    claim.finish(
        status=QuestionGeneration.Status.DONE,
        questions_created=len(created),
        usage=usage,
        error="",
        finished_at=timezone.now(),
    )
    return len(created)


def generation_requeue(*, generation_id: int, error: str, delay: float) -> None:
    """Back to the queue for the task's retry in ``delay`` seconds."""
    QuestionGeneration.objects.filter(
        pk=generation_id, status=QuestionGeneration.Status.RUNNING
    ).requeue(delay=delay, error=error[:2000])


def generation_fail(*, generation_id: int, error: str) -> None:
    QuestionGeneration.objects.filter(pk=generation_id).exclude(
        status=QuestionGeneration.Status.DONE
    ).fail(error=error[:2000])


def generations_recover() -> int:
    """Queue again the jobs whose worker died or whose task message was lost; fail those
    whose workers died on them too often. Returns how many were queued again."""
    from learning.tasks import practice_questions_generate

    return QuestionGeneration.objects.recover(
        send=lambda pk: enqueue_on_commit(practice_questions_generate, pk)
    ).requeued


def generations_recent(*, course: Course) -> list[QuestionGeneration]:
    """The course's latest jobs, for the concepts page."""
    return list(
        QuestionGeneration.objects.filter(concept__course=course)
        .select_related("concept")
        .order_by("-created_at")[: GENERATIONS_SHOWN * 4]
    )
