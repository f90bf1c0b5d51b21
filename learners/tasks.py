"""Thin tasks of the learner model: ids in, one service call."""

from __future__ import annotations

from celery import shared_task

from learners.models import Concept, Course


@shared_task(
    name="learners.tasks.practice_questions_generate",
    autoretry_for=(ConnectionError,),
    max_retries=3,
    retry_backoff=True,
)
def practice_questions_generate(
    concept_id: int, text: str = "", use_llm: bool = True, requested_by_id: int | None = None
) -> int:
    """Generate questions for a concept (LLM questions wait for a teacher's approval);
    a prompt the concept already has is not stored twice, so a redelivery adds nothing.
    ``requested_by_id`` (the teacher who asked) is optional so older messages still run."""
    from learners.concepts import material_texts
    from learners.practice import questions_generate

    concept = Concept.objects.select_related("course").filter(pk=concept_id).first()
    if concept is None:
        return 0
    texts = [text] if text.strip() else material_texts(course=concept.course, concept=concept)
    return len(
        questions_generate(
            concept=concept, texts=texts, use_llm=use_llm, requested_by_id=requested_by_id
        )
    )


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
