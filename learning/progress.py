"""Read use cases for the progress pages: a learner's own, and a teacher's class view."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import cached_property

from django.db.models import Count, OuterRef, Q, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from learners.models import Concept, Course, LearnerProfile, Membership, User
from learning.course_concepts import course_concepts
from learning.models import ConceptMastery, MasteryEvidence, PracticeAttempt, ReviewCard
from learning.practice import MASTERED

NEEDS_WORK = 0.5
ACTIVITY_DAYS = 30


@dataclass(frozen=True)
class Estimate:
    """One cell: a concept's estimate for a learner, with a label that does not rely on
    colour."""

    probability: float | None
    attempts: int = 0
    enough_data: bool = False

    @property
    def percent(self) -> int | None:
        return None if self.probability is None else round(self.probability * 100)

    @property
    def band(self) -> str:
        if not self.enough_data or self.probability is None:
            return "unknown"
        if self.probability >= MASTERED:
            return "mastered"
        if self.probability >= NEEDS_WORK:
            return "developing"
        return "needs-work"

    @property
    def label(self) -> str:
        return str(
            {
                "unknown": _("Not enough data"),
                "mastered": _("Mastered"),
                "developing": _("Developing"),
                "needs-work": _("Needs work"),
            }[self.band]
        )


NO_DATA = Estimate(probability=None)


def _estimate(row: ConceptMastery | None) -> Estimate:
    if row is None:
        return NO_DATA
    return Estimate(row.probability, row.attempts, row.enough_data)


@dataclass(frozen=True)
class ConceptProgress:
    concept: Concept
    estimate: Estimate


@dataclass(frozen=True)
class ActivityDay:
    day: dt.date
    answers: int
    correct: int


def progress_concepts(*, learner: User, course: Course) -> list[ConceptProgress]:
    """Every concept of the course with the learner's estimate (one query, the concepts
    from the cache)."""
    concepts = course_concepts(course=course)
    rows = {
        row.concept_id: row
        for row in ConceptMastery.objects.filter(learner=learner, concept__course=course)
    }
    return [ConceptProgress(c, _estimate(rows.get(c.pk))) for c in concepts]


def progress_activity(
    *, learner: User, course: Course, days: int = ACTIVITY_DAYS, now: dt.datetime | None = None
) -> list[ActivityDay]:
    """Answers per day over the last ``days`` days, zero days included (one query)."""
    today = timezone.localdate(now or timezone.now())
    start = today - dt.timedelta(days=days - 1)
    counts = {
        row["day"]: row
        for row in MasteryEvidence.objects.filter(
            learner=learner,
            concept__course=course,
            created_at__date__gte=start,
        )
        .annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(answers=Count("id"), right=Count("id", filter=Q(correct=True)))
    }
    out = []
    for offset in range(days):
        day = start + dt.timedelta(days=offset)
        row = counts.get(day)
        out.append(ActivityDay(day, row["answers"] if row else 0, row["right"] if row else 0))
    return out


@dataclass
class StudentRow:
    student: User
    cells: list[Estimate] = field(default_factory=list)

    @property
    def known(self) -> list[float]:
        return [c.probability for c in self.cells if c.enough_data and c.probability is not None]

    @property
    def average(self) -> Estimate:
        known = self.known
        if not known:
            return NO_DATA
        return Estimate(sum(known) / len(known), enough_data=True)


@dataclass(frozen=True)
class ConceptSummary:
    concept: Concept
    average: Estimate
    learners_with_data: int
    struggling: int


@dataclass(frozen=True)
class ClassProgress:
    concepts: list[Concept]
    students: list[StudentRow]  # struggling first; no data last
    hardest: list[ConceptSummary]  # lowest class average first; no data left out

    @cached_property
    def _practised(self) -> list[int]:
        """Indices of the concepts at least one student has answered on."""
        return [
            index
            for index in range(len(self.concepts))
            if any(row.cells[index].attempts for row in self.students)
        ]

    @property
    def heatmap_concepts(self) -> list[Concept]:
        """The heat map's columns: only concepts with data, so none pushes those off-screen."""
        return [self.concepts[index] for index in self._practised]

    @property
    def heatmap_rows(self) -> list[tuple[StudentRow, list[Estimate]]]:
        return [(row, [row.cells[index] for index in self._practised]) for row in self.students]

    @property
    def unpractised(self) -> list[Concept]:
        practised = set(self._practised)
        return [c for index, c in enumerate(self.concepts) if index not in practised]


def progress_class(*, course: Course) -> ClassProgress:
    """Concepts × students of the course (three queries, whatever the class size)."""
    concepts = list(Concept.objects.for_course(course))
    students = list(
        User.objects.filter(
            memberships__course=course, memberships__role=Membership.Role.STUDENT
        ).order_by("display_name", "username")
    )
    rows = {
        (row.learner_id, row.concept_id): row
        for row in ConceptMastery.objects.filter(concept__course=course, learner__in=students)
    }
    table = [StudentRow(s, [_estimate(rows.get((s.pk, c.pk))) for c in concepts]) for s in students]
    table.sort(key=lambda r: (not r.known, r.average.probability or 0.0))
    summaries = []
    for index, concept in enumerate(concepts):
        known = [r.cells[index] for r in table if r.cells[index].enough_data]
        if not known:
            continue
        probabilities = [e.probability for e in known if e.probability is not None]
        mean = sum(probabilities) / len(probabilities)
        summaries.append(
            ConceptSummary(
                concept=concept,
                average=Estimate(mean, enough_data=True),
                learners_with_data=len(known),
                struggling=sum(e.band == "needs-work" for e in known),
            )
        )
    summaries.sort(key=lambda s: s.average.probability or 0.0)
    return ClassProgress(concepts=concepts, students=table, hardest=summaries)


def course_student(*, course: Course, student_id: int) -> User | None:
    """A student of the course, or None (the teacher's drill-down may show only those)."""
    return User.objects.filter(
        pk=student_id, memberships__course=course, memberships__role=Membership.Role.STUDENT
    ).first()


def weakest_concept_rows(
    *, learner: User | OuterRef, course: Course | OuterRef
) -> QuerySet[ConceptMastery]:
    """The learner's estimates in the "needs work" band (below ``NEEDS_WORK``, as the
    progress page labels them) with enough data, weakest first. ``learner`` and ``course``
    are instances, or ``OuterRef``s when this is a subquery (the tutor reads the names in
    the query that loads a reply, ``tutor.conversation_selectors.reply_for_writing``)."""
    return ConceptMastery.objects.filter(
        learner=learner, concept__course=course, enough_data=True, probability__lt=NEEDS_WORK
    ).order_by("probability", "concept__name", "concept_id")


def weakest_concepts(*, learner: User, course: Course, limit: int = 3) -> list[ConceptProgress]:
    """The concepts the learner finds hardest (``weakest_concept_rows``), at most ``limit``
    (one query)."""
    rows = weakest_concept_rows(learner=learner, course=course).select_related("concept")[:limit]
    return [ConceptProgress(row.concept, _estimate(row)) for row in rows]


def learning_export(*, user: User) -> dict:
    """Everything the learner model holds about ``user``, JSON-ready, for the data export.
    (Erasure needs nothing more: every row here goes with the user by cascade.)"""
    profile = LearnerProfile.objects.filter(user=user).values(
        "goals",
        "level",
        "interests",
        "larger_text",
        "dyslexia_font",
        "reduced_motion",
        "read_aloud",
        "email_notices",
        "onboarded_at",
    )
    return {
        "profile": {**(profile.first() or {}), "preferred_language": user.preferred_language},
        "mastery": list(
            ConceptMastery.objects.filter(learner=user).values(
                "concept__course__title", "concept__name", "probability", "attempts", "enough_data"
            )
        ),
        "evidence": list(
            MasteryEvidence.objects.filter(learner=user).values(
                "concept__course__title", "concept__name", "correct", "source", "created_at"
            )
        ),
        "practice_answers": list(
            PracticeAttempt.objects.filter(learner=user)
            .order_by("created_at", "id")
            .values("question__prompt", "answer", "correct", "is_review", "created_at")
        ),
        "reviews": list(
            ReviewCard.objects.filter(learner=user).values(
                "question__prompt", "due", "last_review", "reviews"
            )
        ),
    }
