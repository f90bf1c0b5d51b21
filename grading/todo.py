"""A learner's week on the home page: open essay assignments with their deadlines,
grades released lately, and unread notices (feedback). Due reviews come from
``learning.review`` through the learning home tag."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from grading.models import Assignment, Review, Submission
from learners.models import Membership, Notice, User

if TYPE_CHECKING:
    from learners.models import User


TODO_LIMIT = 8
RELEASED_RECENT_DAYS = 14


@dataclass
class LearnerTodo:
    open_assignments: list[Assignment] = field(default_factory=list)
    released: list[Review] = field(default_factory=list)
    unread_notices: list[Notice] = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return not (self.open_assignments or self.released or self.unread_notices)


def learner_todo(*, learner: User, now=None) -> LearnerTodo:
    """Three bounded queries, whatever the number of courses or assignments."""
    now = now or timezone.now()
    studying = Membership.objects.filter(user=learner, role=Membership.Role.STUDENT).values(
        "course_id"
    )
    submitted = Submission.objects.filter(
        assignment=OuterRef("pk"), learner=learner, is_current=True
    )
    open_assignments = (
        Assignment.objects.filter(course_id__in=studying)
        .filter(Q(due_at__isnull=True) | Q(due_at__gt=now))
        .filter(~Exists(submitted))
        .select_related("course")
        .order_by(F("due_at").asc(nulls_last=True), "title", "pk")[:TODO_LIMIT]
    )
    released = (
        Review.objects.filter(
            submission__learner=learner,
            submission__is_current=True,
            status=Review.Status.RELEASED,
            released_at__gte=now - timedelta(days=RELEASED_RECENT_DAYS),
        )
        .select_related("submission__assignment__course")
        .order_by("-released_at", "-pk")[:TODO_LIMIT]
    )
    notices = Notice.objects.filter(user=learner).unread().select_related("course")[:TODO_LIMIT]
    return LearnerTodo(list(open_assignments), list(released), list(notices))
