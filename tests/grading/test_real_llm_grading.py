"""The grading flow against a real model server: llama.cpp with SmolLM2 started for
the run, or the server LLM_BASE_URL names (`pytest -m real_llm`)."""

from __future__ import annotations

import time

import pytest
from django.urls import reverse

from grading.models import Proposal
from tests.grading.workflow_factories import ESSAY

pytestmark = [pytest.mark.real_llm, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_a_real_model_grades_an_essay_within_the_rubric_with_real_evidence(
    real_llm, celery_worker, client, student, assignment
):
    client.force_login(student)
    response = client.post(
        reverse("grading:submit", args=[assignment.course_id, assignment.pk]), {"text": ESSAY}
    )
    assert response.status_code == 302
    submission = assignment.submissions.get()
    deadline = time.monotonic() + 300
    proposal = None
    while time.monotonic() < deadline:
        proposal = Proposal.objects.filter(
            submission=submission, status__in=[Proposal.Status.DONE, Proposal.Status.FAILED]
        ).first()
        if proposal:
            break
        time.sleep(0.5)
    assert proposal is not None, "no proposal finished in time"
    assert proposal.status == Proposal.Status.DONE, proposal.error
    essay = " ".join(ESSAY.lower().split())
    for criterion in assignment.criteria.all():
        item = proposal.for_criterion(criterion.pk)
        assert criterion.min_score <= item["score"] <= criterion.max_score
        # Quotes kept are real (the product drops the others; whitespace is folded).
        for quote in item.get("evidence", []):
            assert " ".join(str(quote).lower().split()) in essay
