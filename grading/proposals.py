"""Grade proposals: which sources an essay gets (the language model, the learned scorer),
their tasks enqueued, claimed under a lease by one worker, requeued or failed, recovered
when their worker died, and finished into the essay's review."""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from ai.budget import ai_budget_reached
from ai.llm import llm_is_configured
from config.jobs import Claim, queued_until
from config.metrics import grading_observed
from grading import manipulation
from grading.models import (
    Proposal,
    StoredScorer,
    Submission,
    rubric_version_of,
)
from grading.reviews import review_flag, review_refresh
from grading.training import submission_vectors
from learners.consent import ai_access

logger = logging.getLogger(__name__)


def grading_sources(*, submission: Submission) -> list[Proposal.Source]:
    """Which proposals this submission gets: the LLM (configured, allowed by consent and
    within the learner's AI token budget for today) and the learned scorer (when one is
    trained for this rubric)."""
    assignment = submission.assignment
    learner, course = submission.learner, assignment.course
    sources: list[Proposal.Source] = []
    if (
        llm_is_configured()
        and ai_access(user=learner, course=course).allowed
        and not ai_budget_reached(user=learner, course=course)
    ):
        sources.append(Proposal.Source.LLM)
    version = rubric_version_of(assignment.criteria.all())
    if StoredScorer.objects.filter(assignment=assignment, rubric_version=version).exists():
        sources.append(Proposal.Source.SCORER)
    return sources


def grading_enqueue(*, submission: Submission, sources: list[str] | None = None) -> list[Proposal]:
    """Create the proposals (at most one per source and rubric version) and enqueue their
    tasks on commit. Calling it again finds the same rows and enqueues nothing new for
    proposals already done."""
    from grading import tasks

    wanted: list[str] = list(grading_sources(submission=submission)) if sources is None else sources
    version = rubric_version_of(submission.assignment.criteria.all())
    proposals = []
    for source in wanted:
        proposal, _created = Proposal.objects.get_or_create(
            submission=submission, rubric_version=version, source=source
        )
        proposals.append(proposal)
        if proposal.status == Proposal.Status.QUEUED:
            Proposal.objects.filter(pk=proposal.pk, status=Proposal.Status.QUEUED).update(
                lease_until=queued_until()
            )
            tasks.proposal_enqueue(source=source, proposal_id=proposal.pk)
    return proposals


def _proposal_send(proposal_id: int) -> None:
    """Send a proposal's task again (the recovery sweep's ``send``)."""
    from grading import tasks

    source = Proposal.objects.values_list("source", flat=True).get(pk=proposal_id)
    tasks.proposal_enqueue(source=source, proposal_id=proposal_id)


def proposals_recover() -> int:
    """Queue again the proposals whose worker died (lease lapsed while running) or whose
    task message seems lost (still queued after its lease); returns how many. One whose
    workers died on it too often is failed for the teacher instead (``config/jobs.py``)."""
    return Proposal.objects.recover(send=_proposal_send).requeued


def proposal_claim(*, proposal_id: int) -> Claim | None:
    """Take a queued proposal (or one whose worker died) for this worker; returns the
    claim, or None when there is nothing to take. A proposal whose workers died on it
    ``WORK_MAX_ATTEMPTS`` times is failed instead."""
    return Proposal.objects.claim(proposal_id)


def proposal_requeue(*, proposal_id: int, error: str, delay: float = 0.0) -> None:
    """Back to the queue for a retry in ``delay`` seconds (the task's countdown)."""
    Proposal.objects.filter(pk=proposal_id, status=Proposal.Status.RUNNING).requeue(
        delay=delay, error=error[:2000]
    )


def proposal_fail(*, proposal_id: int, error: str) -> None:
    failed = (
        Proposal.objects.filter(pk=proposal_id)
        .exclude(status=Proposal.Status.DONE)
        .fail(error=error[:2000])
    )
    if failed:
        proposal_failed(proposal_id=proposal_id)
    else:
        review_refresh(submission=Proposal.objects.get(pk=proposal_id).submission)


def proposal_failed(*, proposal_id: int) -> None:
    """A proposal has just failed (or was given up on, ``ProposalQuerySet.after_abandon``):
    count it and let its review move on without it."""
    proposal = Proposal.objects.select_related("submission").get(pk=proposal_id)
    _grading_observed(proposal, outcome="failed")
    review_refresh(submission=proposal.submission)


def _grading_observed(proposal: Proposal, *, outcome: str) -> None:
    """Grading throughput for ``/metrics``: the time from the proposal's last claim (or
    its creation, when no worker ever claimed it) to its end."""
    began = proposal.claimed_at or proposal.created_at
    grading_observed(
        source=proposal.source,
        outcome=outcome,
        seconds=max(0.0, (timezone.now() - began).total_seconds()),
    )


def proposal_retry(*, proposal: Proposal) -> Proposal:
    """Queue a failed proposal again (the teacher's "try again")."""
    if proposal.status == Proposal.Status.FAILED:
        Proposal.objects.filter(pk=proposal.pk, status=Proposal.Status.FAILED).update(
            status=Proposal.Status.QUEUED, error="", attempts=0
        )
        proposal.refresh_from_db()
        grading_enqueue(submission=proposal.submission, sources=[proposal.source])
    return proposal


def proposal_run_llm(*, claim: Claim, retry: int = 0) -> Proposal:
    """Grade a claimed proposal with the language model (``retry``: how many times the task
    tried before). LLM errors propagate; the task decides whether to retry."""
    from grading.llm_grading import essay_grade

    proposal = Proposal.objects.select_related("submission__assignment", "submission__learner").get(
        pk=claim.pk
    )
    submission = proposal.submission
    assignment = submission.assignment
    result = essay_grade(
        assignment=assignment,
        criteria=list(assignment.criteria.all()),
        exemplars=list(assignment.exemplars.all()),
        text=submission.text,
        language=submission.learner.preferred_language,
        learner_id=submission.learner_id,
        retry=retry,
    )
    flag = None
    if result.grader_directed:
        flag = manipulation.Finding(
            "llm_flag",
            _("The language model reports text addressed to the grader."),
            " … ".join(result.grader_directed)[:300],
            tuple(result.grader_directed),
        )
    return _proposal_finish(
        claim=claim,
        proposal=proposal,
        flag=flag,
        criteria=result.criteria,
        feedback=result.feedback,
        dropped_quotes=result.dropped_quotes,
        notice=result.notice,
        model_name=result.model_name,
        prompt_version=result.usage.get("prompt_version", ""),
        usage=result.usage,
    )


@lru_cache(maxsize=8)
def _scorer_load(stored_id: int, trained_at: str):
    """A stored scorer, loaded once per worker process and fit (``trained_at`` changes
    with every refit, so a stale one is never used)."""
    from grading.scoring import EssayScorer

    return EssayScorer.from_bytes(bytes(StoredScorer.objects.get(pk=stored_id).data))


def proposal_run_scorer(*, claim: Claim) -> Proposal:
    """Score a claimed proposal with the assignment's learned scorer."""
    proposal = Proposal.objects.select_related("submission__assignment").get(pk=claim.pk)
    assignment = proposal.submission.assignment
    stored = StoredScorer.objects.defer("data").get(assignment=assignment)
    scorer = _scorer_load(stored.pk, stored.trained_at.isoformat())
    submission = proposal.submission
    vectors = submission_vectors(submission_ids=[submission.pk], texts=[submission.text])
    prediction = scorer.predict([submission.text], vectors=vectors)[0]
    criteria = {}
    for criterion in assignment.criteria.all():
        estimate = prediction.get(criterion.name)
        if estimate is None:
            continue
        criteria[str(criterion.pk)] = {
            "score": estimate.score,
            "rationale": "",
            "evidence": [],
            "confidence": estimate.confidence,
        }
    return _proposal_finish(
        claim=claim,
        proposal=proposal,
        criteria=criteria,
        feedback={},
        dropped_quotes=0,
        notice="",
        model_name=f"learned-scorer:{stored.pk}:{stored.training_size}",
        prompt_version="",
        usage={"training_size": stored.training_size, "trained_at": stored.trained_at.isoformat()},
    )


def _proposal_finish(
    *,
    claim: Claim,
    proposal: Proposal,
    flag: manipulation.Finding | None = None,
    **fields: Any,
) -> Proposal:
    with transaction.atomic():
        # Only under this worker's claim: one that took over from it writes its own.
        updated = claim.finish(
            status=Proposal.Status.DONE, finished_at=timezone.now(), error="", **fields
        )
        if not updated:  # someone else finished, failed or took it over meanwhile
            return Proposal.objects.get(pk=proposal.pk)
        if flag is not None:
            review_flag(submission=proposal.submission, finding=flag)
        review_refresh(submission=proposal.submission)
    _grading_observed(proposal, outcome="proposed")
    proposal.refresh_from_db()
    return proposal
