"""Grade proposals: which sources an essay gets (the language model, the learned scorer),
their tasks enqueued, claimed under a lease by one worker, requeued or failed, recovered
when their worker died, and finished into the essay's review."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from ai.budget import ai_budget_reached
from ai.llm import llm_is_configured
from config.leases import lapsed, lease_until, queued_until
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

# A proposal claimed before leases existed, whose worker vanished, is claimable again
# after this long (one with a lease is as soon as its lease lapses).
STALE_RUNNING = timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 60)
WORKER_DIED_ERROR = "WorkerLost: the worker grading this essay stopped too many times"


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


def _abandoned(now: datetime) -> Q:
    """Proposals being graded by a worker that died: the lease lapsed (or, claimed before
    leases existed, the claim is older than the task time limit)."""
    return Q(status=Proposal.Status.RUNNING) & (
        lapsed(now=now) | Q(lease_until__isnull=True, started_at__lt=now - STALE_RUNNING)
    )


def _fail_if_it_kills_workers(*, proposal_id: int, now: datetime) -> bool:
    killed = (
        Proposal.objects.filter(_abandoned(now), pk=proposal_id)
        .filter(attempts__gte=settings.WORK_MAX_ATTEMPTS)
        .exists()
    )
    if killed:
        logger.error("proposal %s failed: its worker died on it too often", proposal_id)
        proposal_fail(proposal_id=proposal_id, error=WORKER_DIED_ERROR)
    return killed


def proposals_recover() -> int:
    """Queue again the proposals whose worker died (lease lapsed while running) or whose
    task message seems lost (still queued after its lease); returns how many.

    Each goes back with a conditional update, so a worker that took it over meanwhile
    keeps it; one whose workers died on it too often is failed for the teacher instead.
    """
    from grading import tasks

    now = timezone.now()
    lost = Q(status=Proposal.Status.QUEUED) & (lapsed(now=now) | Q(lease_until__isnull=True))
    candidates = Proposal.objects.filter(lost | _abandoned(now)).values_list(
        "pk", "source", "status", "started_at"
    )
    requeued = 0
    for pk, source, status, started_at in candidates:
        if _fail_if_it_kills_workers(proposal_id=pk, now=now):
            continue
        with transaction.atomic():
            if Proposal.objects.filter(lost | _abandoned(now), pk=pk, started_at=started_at).update(
                status=Proposal.Status.QUEUED, lease_until=queued_until(now=now)
            ):
                logger.warning("proposal %s was %s with no live worker; queued again", pk, status)
                tasks.proposal_enqueue(source=source, proposal_id=pk)
                requeued += 1
    return requeued


def proposal_claim(*, proposal_id: int) -> datetime | None:
    """Take a queued proposal (or one whose worker died) for this worker; returns the
    claim's token (its ``started_at``), or None when there is nothing to take. A proposal
    whose workers died on it ``WORK_MAX_ATTEMPTS`` times is failed instead."""
    now = timezone.now()
    claimable = Q(status=Proposal.Status.QUEUED) | (
        _abandoned(now) & Q(attempts__lt=settings.WORK_MAX_ATTEMPTS)
    )
    if Proposal.objects.filter(claimable, pk=proposal_id).update(
        status=Proposal.Status.RUNNING,
        started_at=now,
        lease_until=lease_until(now=now),
        attempts=F("attempts") + 1,
    ):
        return now
    _fail_if_it_kills_workers(proposal_id=proposal_id, now=now)
    return None


def proposal_claimed(*, proposal_id: int, claimed_at: datetime | None):
    """The proposal while this worker's claim holds (for its lease, ``config/leases.py``)."""
    return Proposal.objects.filter(
        pk=proposal_id, status=Proposal.Status.RUNNING, started_at=claimed_at
    )


def proposal_requeue(*, proposal_id: int, error: str, delay: float = 0.0) -> None:
    """Back to the queue for a retry in ``delay`` seconds (the task's countdown)."""
    Proposal.objects.filter(pk=proposal_id, status=Proposal.Status.RUNNING).update(
        status=Proposal.Status.QUEUED, error=error[:2000], lease_until=queued_until(delay=delay)
    )


def proposal_fail(*, proposal_id: int, error: str) -> None:
    failed = (
        Proposal.objects.filter(pk=proposal_id)
        .exclude(status=Proposal.Status.DONE)
        .update(
            status=Proposal.Status.FAILED,
            error=error[:2000],
            finished_at=timezone.now(),
            lease_until=None,
        )
    )
    proposal = Proposal.objects.select_related("submission").get(pk=proposal_id)
    if failed:
        _grading_observed(proposal, outcome="failed")
    review_refresh(submission=proposal.submission)


def _grading_observed(proposal: Proposal, *, outcome: str) -> None:
    """Grading throughput for ``/metrics``: the time from the proposal's last claim (or
    its creation, when no worker ever claimed it) to its end."""
    began = proposal.started_at or proposal.created_at
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


def proposal_run_llm(*, proposal_id: int, retry: int = 0) -> Proposal:
    """Grade a claimed proposal with the language model (``retry``: how many times the task
    tried before). LLM errors propagate; the task decides whether to retry."""
    from grading.llm_grading import essay_grade

    proposal = Proposal.objects.select_related("submission__assignment", "submission__learner").get(
        pk=proposal_id
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


def proposal_run_scorer(*, proposal_id: int) -> Proposal:
    proposal = Proposal.objects.select_related("submission__assignment").get(pk=proposal_id)
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
    *, proposal: Proposal, flag: manipulation.Finding | None = None, **fields: Any
) -> Proposal:
    with transaction.atomic():
        # Only under this worker's claim: one that took over from it writes its own.
        updated = proposal_claimed(proposal_id=proposal.pk, claimed_at=proposal.started_at).update(
            status=Proposal.Status.DONE,
            finished_at=timezone.now(),
            error="",
            lease_until=None,
            **fields,
        )
        if not updated:  # someone else finished, failed or took it over meanwhile
            return Proposal.objects.get(pk=proposal.pk)
        if flag is not None:
            review_flag(submission=proposal.submission, finding=flag)
        review_refresh(submission=proposal.submission)
    _grading_observed(proposal, outcome="proposed")
    proposal.refresh_from_db()
    return proposal
