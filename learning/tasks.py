"""Thin tasks of the learning side (practice questions, mastery fits): ids in, one service
call. Their ``name=`` strings keep the ``learners.tasks`` path they were queued under."""

from __future__ import annotations

import logging

from celery import shared_task

from learners.models import Course
from learning import practice_jobs
from learning.evidence import mastery_course_fit
from learning.practice import llm_failure

logger = logging.getLogger(__name__)


# Tries of a job whose model is unreachable: 30 s, 1, 2, 4 minutes apart.
GENERATION_RETRIES = 4
GENERATION_RETRY_SECONDS = 30


@shared_task(
    name="learners.tasks.practice_questions_generate",
    bind=True,
    acks_late=True,
    max_retries=GENERATION_RETRIES,
)
def practice_questions_generate(self, generation_id: int) -> int | None:
    """Run one question-writing job (``learning.practice_jobs``); LLM questions wait for a
    teacher's approval, and a prompt the concept already has is not stored twice."""
    claim = practice_jobs.generation_claim(generation_id=generation_id)
    if claim is None:
        return None  # done, failed, or another worker has it
    try:
        with claim.lease():
            return practice_jobs.generation_run(claim=claim)
    except Exception as error:
        failure = llm_failure(error)
        if failure is None:
            practice_jobs.generation_fail(generation_id=generation_id, error=repr(error)[:2000])
            raise
        detail, transient = failure
        retries = self.request.retries
        # Unreachable or overloaded: later. Anything else (refused, over the context,
        # unusable answers after a repair) would fail the same way again: fail now.
        if transient and retries < GENERATION_RETRIES:
            countdown = GENERATION_RETRY_SECONDS * 2**retries
            practice_jobs.generation_requeue(
                generation_id=generation_id, error=detail, delay=countdown
            )
            raise self.retry(countdown=countdown) from error
        logger.warning("Question generation %s failed: %s", generation_id, detail)
        practice_jobs.generation_fail(generation_id=generation_id, error=detail)
        return None


@shared_task(name="learners.tasks.mastery_fit_course")
def mastery_fit_course(course_id: int) -> bool:
    """Refit a course's mastery model on its response log (idempotent: same log, same fit)."""
    course = Course.objects.filter(pk=course_id).first()
    return course is not None and mastery_course_fit(course=course) is not None


@shared_task(name="learners.tasks.mastery_fit_all_courses")
def mastery_fit_all_courses() -> int:
    """For beat: refit every course that has evidence."""
    ids = Course.objects.filter(concepts__evidence__isnull=False).values_list("pk", flat=True)
    for course_id in ids.distinct():
        mastery_fit_course.delay(course_id)
    return len(ids.distinct())
