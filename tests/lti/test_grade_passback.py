"""Assignment and Grade Services: a released grade reaches the platform's gradebook
(lti1p3platform's AGS handlers, behind its access tokens) with the right score, again
when it changes, and survives a platform outage as a tracked job."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from grading import reviews, submissions
from grading.models import Review
from lti.ags import score_post_send, score_posts_recover
from lti.models import LtiContext, LtiLineItem, LtiScorePost
from tests.lti.launching import follow_landing, instructor_launch, launch, learner_launch

pytestmark = pytest.mark.django_db


@pytest.fixture
def lms_course(client, lti_platform, assignment):
    """The teacher and a learner have launched from the LMS; the assignment belongs to
    the linked course."""
    follow_landing(client, launch(client, lti_platform, instructor_launch()))
    client.logout()
    context = LtiContext.objects.get()
    assignment.course = context.course
    assignment.save()
    follow_landing(
        client,
        launch(
            client, lti_platform, learner_launch(custom={"target": f"assignment:{assignment.pk}"})
        ),
    )
    client.logout()
    teacher = context.course.memberships.get(role="teacher").user
    learner = context.course.memberships.get(role="student").user
    return context, assignment, teacher, learner


def _grade(assignment, learner, teacher, scores, *, reason=""):
    submission = assignment.submissions.filter(learner=learner, is_current=True).first()
    if submission is None:
        submission = submissions.submission_submit(
            assignment=assignment, learner=learner, text="Plants turn light into sugar."
        )
    for criterion, score in zip(assignment.criteria.all(), scores, strict=True):
        reviews.criterion_score_set(
            submission=submission, criterion=criterion, score=score, actor=teacher, reason=reason
        )
    review = Review.objects.get(submission=submission)
    return reviews.review_release(review=review, actor=teacher)


def test_a_released_grade_reaches_the_gradebook_with_the_right_score(
    lms_course, lti_platform, eager_tasks, django_capture_on_commit_callbacks
):
    context, assignment, teacher, learner = lms_course
    with django_capture_on_commit_callbacks(execute=True):
        _grade(assignment, learner, teacher, [3, 1.5])
    [score] = lti_platform.scores
    assert score["userId"] == "learner-1"
    assert score["scoreGiven"] == 4.5 and score["scoreMaximum"] == 6.0
    assert score["activityProgress"] == "Completed" and score["gradingProgress"] == "FullyGraded"
    assert "Argument: 3/4" in score["comment"]
    [item] = lti_platform.line_items["course-101"].values()
    assert item["resourceId"] == f"assignment-{assignment.pk}"
    assert item["label"] == assignment.title and item["scoreMaximum"] == 6.0
    post = LtiScorePost.objects.get()
    assert post.status == "sent" and post.sent_at and post.attempts == 1
    assert LtiLineItem.objects.get().url == item["id"]


def test_a_changed_grade_posts_again_to_the_same_line_item(
    lms_course, lti_platform, eager_tasks, django_capture_on_commit_callbacks
):
    context, assignment, teacher, learner = lms_course
    with django_capture_on_commit_callbacks(execute=True):
        _grade(assignment, learner, teacher, [3, 1.5])
    with django_capture_on_commit_callbacks(execute=True):
        _grade(assignment, learner, teacher, [4, 2], reason="Re-read the second paragraph")
    assert [s["scoreGiven"] for s in lti_platform.scores] == [4.5, 6.0]
    assert len(lti_platform.line_items["course-101"]) == 1
    assert len({s["line_item"] for s in lti_platform.scores}) == 1
    assert LtiScorePost.objects.get().status == "sent"


def test_a_learner_who_did_not_come_from_the_lms_sends_nothing(
    lms_course, lti_platform, make_user, enrol, eager_tasks, django_capture_on_commit_callbacks
):
    context, assignment, teacher, _learner = lms_course
    local = make_user("local-learner")
    enrol(local, context.course, "student")
    with django_capture_on_commit_callbacks(execute=True):
        _grade(assignment, local, teacher, [2, 1])
    assert lti_platform.scores == []
    assert not LtiScorePost.objects.exists()


def test_an_outage_loses_nothing_the_job_waits_then_sends(lms_course, lti_platform, settings):
    context, assignment, teacher, learner = lms_course
    lti_platform.down = True
    _grade(assignment, learner, teacher, [3, 1.5])  # its task message is not sent here
    post = LtiScorePost.objects.get()
    assert post.status == "queued"

    assert score_post_send(post_id=post.pk) == "queued"
    post.refresh_from_db()
    assert post.attempts == 1 and "HTTP 503" in post.error
    assert post.lease_until > timezone.now() + timedelta(seconds=settings.LTI_SCORE_BACKOFF_SECONDS)
    assert lti_platform.scores == []

    lti_platform.down = False
    assert score_post_send(post_id=post.pk) == "sent"
    post.refresh_from_db()
    assert post.status == "sent" and post.error == "" and post.attempts == 2
    assert [s["scoreGiven"] for s in lti_platform.scores] == [4.5]


def test_after_the_last_attempt_the_job_fails_with_its_reason_and_the_teacher_can_retry(
    lms_course, lti_platform, settings, client
):
    settings.LTI_SCORE_MAX_ATTEMPTS = 2
    context, assignment, teacher, learner = lms_course
    lti_platform.down = True
    _grade(assignment, learner, teacher, [3, 1.5])
    post = LtiScorePost.objects.get()
    assert score_post_send(post_id=post.pk) == "queued"
    assert score_post_send(post_id=post.pk) == "failed"
    post.refresh_from_db()
    assert post.status == "failed" and "HTTP 503" in post.error

    client.force_login(teacher)
    page = client.get(f"/courses/{context.course.pk}/lms/")
    html = page.content.decode()
    assert page.status_code == 200 and "Failed" in html and "HTTP 503" in html
    lti_platform.down = False
    retried = client.post(f"/courses/{context.course.pk}/lms/grades/{post.pk}/retry/")
    assert retried.status_code == 302
    post.refresh_from_db()
    assert post.status == "queued" and post.attempts == 0
    assert score_post_send(post_id=post.pk) == "sent"
    assert "Sent" in client.get(f"/courses/{context.course.pk}/lms/").content.decode()


def test_a_learner_cannot_see_the_lms_page(lms_course, client):
    context, _assignment, _teacher, learner = lms_course
    client.force_login(learner)
    assert client.get(f"/courses/{context.course.pk}/lms/").status_code == 404
    assert "/lms/" not in client.get(f"/courses/{context.course.pk}/").content.decode()


def test_the_teacher_finds_the_lms_page_from_the_course_page(lms_course, client):
    context, _assignment, teacher, _learner = lms_course
    client.force_login(teacher)
    course_page = client.get(f"/courses/{context.course.pk}/").content.decode()
    assert f'href="/courses/{context.course.pk}/lms/"' in course_page
    assert "LMS link and grades sent to the LMS" in course_page


def test_the_recovery_sweep_resends_a_job_whose_worker_died(lms_course, lti_platform):
    context, assignment, teacher, learner = lms_course
    _grade(assignment, learner, teacher, [3, 1.5])
    post = LtiScorePost.objects.get()
    # A worker claimed it, then died: its lease lapsed while "sending".
    LtiScorePost.objects.filter(pk=post.pk).update(
        status="sending", lease_until=timezone.now() - timedelta(seconds=1), attempts=1
    )
    assert score_posts_recover() == 1
    post.refresh_from_db()
    assert post.status == "queued" and post.lease_until > timezone.now()
    assert score_post_send(post_id=post.pk) == "sent"
    assert len(lti_platform.scores) == 1
