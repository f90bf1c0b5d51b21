"""Celery tasks of essay grading: thin, idempotent, retried with a bound and backoff.

A proposal row exists before its task is enqueued (one per submission, rubric version and
source: a unique constraint), and a task claims it with a conditional update, so a retried
or redelivered task grades nothing twice. The worker renews the claim's lease while it
grades; if the worker dies, the recovery sweep queues the proposal again. When the
language model is unreachable the proposal goes back to queued and the task retries
later; after the last retry it is marked failed and the essay waits for the teacher, who
can grade it or try the AI again.
"""

from __future__ import annotations

import logging

from celery import shared_task

from config.celery import enqueue_on_commit
from config.leases import Lease
from grading import services

logger = logging.getLogger(__name__)

LLM_RETRIES = 6
# Seconds before retry n (1-based): 30 s, 1, 2, 4, 8, 16 minutes (capped).
RETRY_BASE_SECONDS = 30
RETRY_MAX_SECONDS = 30 * 60
BAD_RESPONSE_RETRIES = 1


def proposal_enqueue(*, source: str, proposal_id: int) -> None:
    """Send a proposal's task once the transaction commits (CELERY_TASK_ROUTES puts the
    language model's on ``llm`` and the learned scorer's on ``cpu``). If the broker is
    away the proposal stays queued for the recovery sweep."""
    enqueue_on_commit(proposal_llm if source == "llm" else proposal_scorer, proposal_id)


def retry_countdown(retries: int) -> int:
    return min(RETRY_BASE_SECONDS * 2**retries, RETRY_MAX_SECONDS)


@shared_task(name="grading.tasks.proposal_llm", bind=True, acks_late=True, max_retries=LLM_RETRIES)
def proposal_llm(self, proposal_id: int) -> str | None:
    """Grade one proposal with the language model."""
    from tutor.llm import LLMBadResponse, LLMError, LLMNotConfigured, LLMUnavailable

    claimed_at = services.proposal_claim(proposal_id=proposal_id)
    if claimed_at is None:
        return None
    try:
        with Lease(services.proposal_claimed(proposal_id=proposal_id, claimed_at=claimed_at)):
            services.proposal_run_llm(proposal_id=proposal_id)
    except LLMNotConfigured as error:
        # Offline mode began after this was queued: waiting would not help.
        services.proposal_fail(proposal_id=proposal_id, error=f"LLMNotConfigured: {error.detail}")
        return "failed"
    except (LLMUnavailable, LLMBadResponse) as error:
        retries = self.request.retries
        bound = LLM_RETRIES if isinstance(error, LLMUnavailable) else BAD_RESPONSE_RETRIES
        detail = f"{type(error).__name__}: {error.detail or error}"
        if retries >= bound:
            services.proposal_fail(proposal_id=proposal_id, error=detail)
            return "failed"
        countdown = retry_countdown(retries)
        services.proposal_requeue(proposal_id=proposal_id, error=detail, delay=countdown)
        raise self.retry(countdown=countdown, max_retries=bound) from error
    except LLMError as error:
        services.proposal_fail(
            proposal_id=proposal_id, error=f"{type(error).__name__}: {error.detail or error}"
        )
        return "failed"
    except Exception as error:
        services.proposal_fail(proposal_id=proposal_id, error=repr(error))
        raise
    return "done"


@shared_task(name="grading.tasks.proposal_scorer", acks_late=True)
def proposal_scorer(proposal_id: int) -> str | None:
    """Score one proposal with the assignment's learned scorer."""
    claimed_at = services.proposal_claim(proposal_id=proposal_id)
    if claimed_at is None:
        return None
    try:
        with Lease(services.proposal_claimed(proposal_id=proposal_id, claimed_at=claimed_at)):
            services.proposal_run_scorer(proposal_id=proposal_id)
    except Exception as error:
        services.proposal_fail(proposal_id=proposal_id, error=repr(error))
        raise
    return "done"


@shared_task(name="grading.tasks.scorer_train", acks_late=True)
def scorer_train(assignment_id: int) -> int | None:
    """Refit the assignment's learned scorer on its confirmed grades."""
    stored = services.scorer_train(assignment_id=assignment_id)
    return stored.training_size if stored else None
