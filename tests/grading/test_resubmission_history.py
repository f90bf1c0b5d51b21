"""A resubmission never hides a released grade: every version and its grade stay visible
to the student, in the API and in the teacher's queue, and the page says beforehand what
a resubmission does (issue 16, item 9)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from grading import reviews, tasks
from grading.models import Proposal
from tests.grading.workflow_factories import ESSAY, grade_reply

pytestmark = pytest.mark.django_db

SECOND = ESSAY + "\n\nA second version adds an experiment with pondweed and a lamp."


@pytest.fixture
def released_then_resubmitted(llm_server, student, teacher, assignment, submit):
    llm_server.script(json_reply=grade_reply(assignment, scores=(3, 1.5)))
    first = submit(student)
    tasks.proposal_llm.apply(args=[Proposal.objects.get(submission=first).pk])
    for criterion in assignment.criteria.all():
        reviews.criterion_score_set(
            submission=first,
            criterion=criterion,
            score=first.proposals.get().for_criterion(criterion.pk)["score"],
            actor=teacher,
        )
    reviews.review_release(review=first.review, actor=teacher)
    second = submit(student, SECOND)
    return first, second


def test_the_student_page_says_what_a_resubmission_does_before_it(
    client, student, assignment, submit
):
    client.force_login(student)
    url = reverse("grading:assignment", args=[assignment.course_id, assignment.pk])
    assert "A new version replaces" not in client.get(url).content.decode()
    submit(student)
    body = client.get(url).content.decode()
    assert "A new version replaces" in body
    assert "stays in your history" in body or "stay in your history" in body


def test_the_released_grade_stays_visible_to_the_student_after_a_resubmission(
    client, student, assignment, released_then_resubmitted
):
    client.force_login(student)
    url = reverse("grading:assignment", args=[assignment.course_id, assignment.pk])
    body = client.get(url).content.decode()
    assert "Your teacher has not released the grade yet." in body  # of version 2
    assert "The grade of your version 1 (4.5 / 6)" in body
    assert "Version 2" in body and "Version 1" in body
    assert "grade released: 4.5 / 6" in body
    assert "You explain the energy change clearly." in body  # version 1's feedback


def test_the_api_lists_every_version_with_its_grade(
    client, student, assignment, released_then_resubmitted
):
    first, second = released_then_resubmitted
    client.force_login(student)
    data = client.get(
        reverse("grading:api-grade", args=[assignment.course_id, assignment.pk])
    ).json()
    assert data["status"] == "not_released"
    assert [v["number"] for v in data["versions"]] == [2, 1]
    assert data["versions"][0]["submission_id"] == second.pk
    assert data["versions"][0]["is_current"] is True
    old = data["versions"][1]
    assert old["submission_id"] == first.pk and old["status"] == "released"
    assert old["total"] == "4.5" and old["strengths"] == ["You explain the energy change clearly."]


def test_the_teachers_queue_shows_the_grade_released_for_the_earlier_version(
    client, teacher, assignment, released_then_resubmitted
):
    first, second = released_then_resubmitted
    client.force_login(teacher)
    page = client.get(
        reverse("grading:review", args=[assignment.course_id, assignment.pk])
    ).content.decode()
    assert "Version 2" in page
    assert "Version 1 released: 4.5 / 6" in page
    data = client.get(
        reverse("grading:api-review-queue", args=[assignment.course_id, assignment.pk])
    ).json()
    item = next(i for i in data if i["submission_id"] == second.pk)
    assert item["version"] == 2
    assert item["earlier_versions"][0]["submission_id"] == first.pk
    assert item["earlier_versions"][0]["released_total"] == "4.5"
    essay_page = client.get(
        reverse("grading:review-essay", args=[assignment.course_id, assignment.pk, second.pk])
    ).content.decode()
    assert "Versions of this essay" in essay_page and "released: 4.5 / 6" in essay_page
