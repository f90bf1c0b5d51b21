"""The essay review page as one form: every criterion saved at once, an audit entry per
changed criterion, nothing saved when any criterion is refused or the grade changed
meanwhile; next essay; level descriptors and both proposals on the page; history as
sentences without internal ids."""

from __future__ import annotations

import pytest
from django.urls import reverse

from grading import reviews, tasks
from grading.models import CriterionScore, Proposal, Review
from learners.models import AuditEvent
from tests.grading.workflow_factories import ESSAY, grade_reply

pytestmark = pytest.mark.django_db


def _url(name, assignment, *args):
    return reverse(f"grading:{name}", args=[assignment.course_id, assignment.pk, *args])


@pytest.fixture
def graded_pair(llm_server, student, make_user, enrol, course, assignment, submit):
    """Two essays with finished LLM proposals (3 and 1.5)."""
    llm_server.script(json_reply=grade_reply(assignment))
    other = make_user("other", display_name="Olga Other")
    enrol(other, course, "student")
    submissions = [submit(student), submit(other, ESSAY + " More.")]
    for submission in submissions:
        tasks.proposal_llm.apply(args=[Proposal.objects.get(submission=submission).pk])
    return submissions


def _form(client, assignment, submission):
    response = client.get(_url("review-essay", assignment, submission.pk))
    assert response.status_code == 200
    return response.context["version"], response.content.decode()


def _post(assignment, submission, version, scores, **extra):
    data = {"version": version, **extra}
    for criterion, value in zip(assignment.criteria.all(), scores, strict=True):
        data[f"c{criterion.pk}-score"] = value
    return data


def test_one_post_confirms_every_criterion_and_opens_the_next_essay(
    client, teacher, assignment, graded_pair
):
    first, second = graded_pair
    client.force_login(teacher)
    queue_first = Review.objects.in_queue().first().submission
    queue_second = second if queue_first == first else first
    version, html = _form(client, assignment, queue_first)
    response = client.post(
        _url("review-save", assignment, queue_first.pk),
        _post(assignment, queue_first, version, ["3", "1.5"], then_next="1"),
    )
    assert response.status_code == 302
    assert response["Location"] == _url("review-essay", assignment, queue_second.pk)
    assert CriterionScore.objects.filter(submission=queue_first).count() == 2
    assert Review.objects.get(submission=queue_first).status == Review.Status.CONFIRMED
    events = AuditEvent.objects.filter(details__submission_id=queue_first.pk)
    assert sorted(e.details["decision"] for e in events) == ["approve", "approve"]
    # Saving the same scores again changes nothing and records nothing.
    version, _html = _form(client, assignment, queue_first)
    client.post(
        _url("review-save", assignment, queue_first.pk),
        _post(assignment, queue_first, version, ["3", "1.5"]),
    )
    assert AuditEvent.objects.filter(details__submission_id=queue_first.pk).count() == 2
    # The last essay's "next" goes back to the queue, which says it is done.
    version, _html = _form(client, assignment, queue_second)
    response = client.post(
        _url("review-save", assignment, queue_second.pk),
        _post(assignment, queue_second, version, ["3", "1.5"], then_next="1"),
        follow=True,
    )
    assert response.redirect_chain[-1][0] == _url("review", assignment)
    assert "Every essay in the queue is reviewed." in response.content.decode()


def test_one_refused_criterion_saves_nothing_and_keeps_what_was_typed(
    client, teacher, assignment, graded_pair
):
    submission = graded_pair[0]
    client.force_login(teacher)
    version, _html = _form(client, assignment, submission)
    argument, conventions = assignment.criteria.all()
    response = client.post(
        _url("review-save", assignment, submission.pk),
        {
            "version": version,
            f"c{argument.pk}-score": "1",  # differs from the proposal: needs a reason
            f"c{argument.pk}-comment": "Thin support, see paragraph two",
            f"c{conventions.pk}-score": "1.5",
        },
    )
    assert response.status_code == 422
    html = response.content.decode()
    assert "Give a reason" in html
    assert "Thin support, see paragraph two" in html
    assert not CriterionScore.objects.exists()
    assert not AuditEvent.objects.filter(action="grade_changed").exists()
    response = client.post(
        _url("review-save", assignment, submission.pk),
        {
            "version": version,
            f"c{argument.pk}-score": "1",
            f"c{argument.pk}-reason": "uses only one source",
            f"c{conventions.pk}-score": "1.5",
        },
    )
    assert response.status_code == 302
    assert CriterionScore.objects.get(criterion=argument).score == 1
    html = client.get(_url("review-essay", assignment, submission.pk)).content.decode()
    assert "Argument: the AI proposed 3; Ms. Tanaka set 1: “uses only one source”" in html
    assert "Conventions: the AI proposed 1.5; Ms. Tanaka approved it" in html


def test_a_save_from_a_stale_page_is_refused_and_nothing_is_overwritten(
    client, teacher, make_user, enrol, course, assignment, graded_pair
):
    submission = graded_pair[0]
    colleague = make_user("colleague", display_name="Mr Colleague")
    enrol(colleague, course, "teacher")
    client.force_login(teacher)
    version, _html = _form(client, assignment, submission)
    argument = assignment.criteria.get(name="Argument")
    reviews.criterion_score_set(
        submission=submission, criterion=argument, score=2, reason="short", actor=colleague
    )
    response = client.post(
        _url("review-save", assignment, submission.pk),
        _post(assignment, submission, version, ["3", "1.5"]),
    )
    assert response.status_code == 409
    assert "Someone else changed this essay" in response.content.decode()
    assert CriterionScore.objects.get(criterion=argument).score == 2
    assert CriterionScore.objects.count() == 1


def test_the_page_shows_levels_both_proposals_and_no_internal_ids(
    client, teacher, assignment, graded_pair, settings
):
    submission = graded_pair[0]
    argument = assignment.criteria.get(name="Argument")
    Proposal.objects.create(
        submission=submission,
        rubric_version=submission.proposals.get().rubric_version,
        source=Proposal.Source.SCORER,
        status=Proposal.Status.DONE,
        model_name="learned-scorer:1:10",
        criteria={
            str(c.pk): {"score": s, "confidence": 0.6, "rationale": "", "evidence": []}
            for c, s in zip(assignment.criteria.all(), (2, 1), strict=True)
        },
    )
    client.force_login(teacher)
    html = client.get(_url("review-essay", assignment, submission.pk)).content.decode()
    assert "A clear, well-supported argument" in html and "No argument" in html
    assert "AI proposes 3" in html and "Learned scorer proposes 2" in html
    assert "learned-scorer:" not in html
    assert 'data-criterion-number="1"' in html and f"criterion-{argument.pk}" in html
    assert "js/review-keys.js" in html
    assert ' style="' not in html
