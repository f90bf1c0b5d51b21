"""Thin tasks of the learner model: ids in, one service call."""

from __future__ import annotations

import logging

from celery import shared_task

from learners.models import Course

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
    """Run one question-writing job (``learners.practice_jobs``); LLM questions wait for a
    teacher's approval, and a prompt the concept already has is not stored twice."""
    from config.leases import Lease
    from learners import practice_jobs
    from learners.practice import llm_failure

    claimed_at = practice_jobs.generation_claim(generation_id=generation_id)
    if claimed_at is None:
        return None  # done, failed, or another worker has it
    claimed = practice_jobs.generation_claimed(generation_id=generation_id, claimed_at=claimed_at)
    try:
        with Lease(claimed):
            return practice_jobs.generation_run(generation_id=generation_id, claimed_at=claimed_at)
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
    from learners.evidence import mastery_course_fit

    course = Course.objects.filter(pk=course_id).first()
    return course is not None and mastery_course_fit(course=course) is not None


@shared_task(name="learners.tasks.mastery_fit_all_courses")
def mastery_fit_all_courses() -> int:
    """For beat: refit every course that has evidence."""
    ids = Course.objects.filter(concepts__evidence__isnull=False).values_list("pk", flat=True)
    for course_id in ids.distinct():
        mastery_fit_course.delay(course_id)
    return len(ids.distinct())


@shared_task(
    name="learners.tasks.email_send",
    autoretry_for=(OSError,),
    max_retries=5,
    retry_backoff=True,
)
def email_send(subject: str, body: str, to: str) -> int:
    """One email through Django's email backend (console in development)."""
    from django.core.mail import send_mail

    return send_mail(subject, body, None, [to])


@shared_task(name="learners.tasks.first_sign_in_emails_send")
def first_sign_in_emails_send(user_ids: list[int]) -> int:
    """The first sign-in email of each new account (enrolled from a file)."""
    from learners.accounts import first_sign_in_send
    from learners.models import User

    users = list(User.objects.filter(pk__in=user_ids, is_active=True))
    for user in users:
        first_sign_in_send(user=user)
    return len(users)


@shared_task(name="learners.tasks.notice_email_send")
def notice_email_send(notice_id: int) -> bool:
    """Email one notice to its user, once (a redelivery finds it already sent)."""
    from learners.notices import notice_email

    return notice_email(notice_id=notice_id)
