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
def practice_questions_generate(concept_id: int, text: str = "", use_llm: bool = True) -> int:
    """Generate questions for a concept (LLM questions wait for a teacher's approval);
    a prompt the concept already has is not stored twice, so a redelivery adds nothing."""
    from learners.concepts import material_texts
    from learners.practice import questions_generate

    concept = Concept.objects.select_related("course").filter(pk=concept_id).first()
    if concept is None:
        return 0
    texts = [text] if text.strip() else material_texts(course=concept.course, concept=concept)
    return len(questions_generate(concept=concept, texts=texts, use_llm=use_llm))


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
