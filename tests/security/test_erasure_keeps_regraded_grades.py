"""Erasing a student keeps a released grade even while its regrade is pending
(issue 16, item 8)."""

from __future__ import annotations

import pytest

from grading import reviews, rubrics, submissions
from grading.models import CriterionScore, RegradeRequest, Review, Submission
from learners.models import User
from privacy.personal_data import privacy_erase
from tests.grading.workflow_factories import ESSAY, RUBRIC

pytestmark = pytest.mark.django_db


@pytest.fixture
def released_with_pending_regrade(course, teacher, student):
    assignment = rubrics.assignment_create(
        course=course, title="Why photosynthesis matters", prompt="Explain.", rubric=RUBRIC
    )
    submission = submissions.submission_submit(assignment=assignment, learner=student, text=ESSAY)
    for criterion, score in zip(assignment.criteria.all(), (3, 1.5), strict=True):
        reviews.criterion_score_set(
            submission=submission, criterion=criterion, score=score, actor=teacher
        )
    reviews.review_release(review=Review.objects.get(submission=submission), actor=teacher)
    reviews.regrade_request(submission=submission, learner=student, comment="Please re-read.")
    assert Review.objects.get(submission=submission).status == Review.Status.PENDING
    return submission


def test_erasure_keeps_a_released_grade_whose_regrade_is_pending(
    released_with_pending_regrade, student, staff_user
):
    submission = released_with_pending_regrade
    snapshot = Review.objects.get(submission=submission).released

    privacy_erase(user=student, actor=staff_user)

    assert not User.objects.filter(pk=student.pk).exists()
    kept = Submission.objects.get(pk=submission.pk)
    assert kept.learner.username.startswith("erased-")
    assert kept.text == ""
    review = Review.objects.get(submission=kept)
    assert review.released == snapshot
    assert review.released["total"] == "4.5"
    # The request was the student's words and went with them; the grade stands released.
    assert review.status == Review.Status.RELEASED
    assert not RegradeRequest.objects.filter(submission=kept).exists()
    assert CriterionScore.objects.filter(submission=kept).count() == 2
    assert not Review.objects.in_queue().filter(pk=review.pk).exists()
