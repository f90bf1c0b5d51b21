"""What a learner is told when the teacher releases a grade or answers a regrade."""

from __future__ import annotations

from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import override

from grading.models import Review
from learners.models import Notice
from learners.notices import notice_send


def release_notice_send(*, review: Review, regrade_answered: bool) -> Notice:
    """A notice (and an email, if the learner wants one) about a release, written in the
    learner's language."""
    submission = review.submission
    assignment = submission.assignment
    learner = submission.learner
    with override(learner.preferred_language):
        if regrade_answered:
            kind = Notice.Kind.REGRADE_ANSWERED
            title = _("Your regrade request for “%(title)s” has been answered") % {
                "title": assignment.title
            }
        else:
            kind = Notice.Kind.GRADE_RELEASED
            title = _("Your grade for “%(title)s” is released") % {"title": assignment.title}
    return notice_send(
        user=learner,
        course=assignment.course,
        kind=kind,
        title=title,
        url=reverse("grading:assignment", args=[assignment.course_id, assignment.pk]),
    )
