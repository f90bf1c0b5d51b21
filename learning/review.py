"""Spaced review with FSRS (the ``fsrs`` package): every practised question gets a card
whose next due date depends on how well the learner answered, now and before."""

from __future__ import annotations

from datetime import datetime

from django.db.models import QuerySet
from django.utils import timezone
from fsrs import Card, Rating, Scheduler

from learners.models import Course, User
from learning.models import PracticeQuestion, ReviewCard

# No same-day learning steps: practice itself is the first exposure, so the first review
# lands on a later day; no fuzzing, so a schedule is reproducible.
_SCHEDULER = Scheduler(learning_steps=(), relearning_steps=(), enable_fuzzing=False)


def _rating(*, correct: bool) -> Rating:
    return Rating.Good if correct else Rating.Again


def review_schedule(
    *, learner: User, question: PracticeQuestion, correct: bool, now: datetime | None = None
) -> ReviewCard:
    """Record an answer on ``question`` in the learner's review card (made on first
    practice) and move its due date."""
    now = now or timezone.now()
    row = ReviewCard.objects.select_for_update().filter(learner=learner, question=question).first()
    card = Card.from_dict(row.card) if row is not None else Card()
    card, _log = _SCHEDULER.review_card(card, _rating(correct=correct), review_datetime=now)
    if row is None:
        row = ReviewCard(learner=learner, question=question)
    row.card = card.to_dict()
    row.due = card.due
    row.last_review = now
    row.reviews += 1
    row.save()
    return row


def reviews_due(
    *, learner: User, course: Course | None = None, now: datetime | None = None
) -> QuerySet[ReviewCard]:
    """The learner's cards due by the end of today, oldest first, with their question and
    concept (and course) loaded."""
    now = now or timezone.now()
    end_of_today = timezone.localtime(now).replace(hour=23, minute=59, second=59, microsecond=0)
    cards = ReviewCard.objects.filter(
        learner=learner,
        due__lte=end_of_today,
        question__status=PracticeQuestion.Status.APPROVED,
    ).select_related("question__concept__course")
    if course is not None:
        cards = cards.filter(question__concept__course=course)
    else:  # only courses the learner still belongs to
        cards = cards.filter(question__concept__course__memberships__user=learner)
    return cards.order_by("due", "id")


def reviews_upcoming(*, learner: User, course: Course, limit: int = 10) -> QuerySet[ReviewCard]:
    return (
        ReviewCard.objects.filter(learner=learner, question__concept__course=course)
        .select_related("question__concept")
        .order_by("due", "id")[:limit]
    )
