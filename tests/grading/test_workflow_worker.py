"""The grading pipeline through a real Celery worker, the real broker and the LLM test
server: submit → task on the llm queue → proposal → review queue."""

from __future__ import annotations

import pytest
from django.urls import reverse

from grading import tasks
from grading.models import Proposal, Review
from tests.grading.workflow_factories import ESSAY, grade_reply
from tests.trust.workers import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def _wait_for(predicate, *, timeout: float = 30.0):
    try:
        return wait_for(predicate, timeout=timeout, what="the worker")
    except AssertionError as error:
        states = list(Proposal.objects.values_list("submission_id", "status", "error"))
        raise AssertionError(f"{error}: {states}") from None


def _done_proposal(submission_id):
    return Proposal.objects.filter(
        submission_id=submission_id, status__in=[Proposal.Status.DONE, Proposal.Status.FAILED]
    ).first()


def test_a_submitted_essay_is_graded_by_the_worker_exactly_once(
    celery_worker, llm_server, client, student, assignment
):
    llm_server.script(json_reply=grade_reply(assignment))
    client.force_login(student)
    response = client.post(
        reverse("grading:submit", args=[assignment.course_id, assignment.pk]), {"text": ESSAY}
    )
    assert response.status_code == 302
    submission = assignment.submissions.get()
    proposal = _wait_for(lambda: _done_proposal(submission.pk))
    assert proposal.status == Proposal.Status.DONE
    assert proposal.model_name == llm_server.model
    assert Review.objects.get(submission=submission).status == Review.Status.PENDING

    # A redelivered task finds the proposal done and grades nothing again.
    result = tasks.proposal_llm.apply_async(args=[proposal.pk], queue="llm")
    assert result.get(timeout=30) is None
    assert Proposal.objects.filter(submission=submission).count() == 1
    assert llm_server.stats.chat_requests == 1


def test_a_503_is_retried_later_by_the_worker_and_the_essay_is_graded(
    celery_worker, llm_server, settings, monkeypatch, student, assignment, submit
):
    settings.LLM_MAX_RETRIES = 0  # no quick retries inside the client: the task retries
    monkeypatch.setattr(tasks, "RETRY_BASE_SECONDS", 0)
    llm_server.script(json_reply=grade_reply(assignment))
    llm_server.fail_next(2, status=503)
    submission = submit(student)
    proposal = _wait_for(lambda: _done_proposal(submission.pk))
    assert proposal.status == Proposal.Status.DONE
    assert llm_server.stats.chat_requests == 3
