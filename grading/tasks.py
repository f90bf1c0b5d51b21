"""Celery tasks of essay grading: thin, idempotent, retried with a bound and backoff.

A proposal row exists before its task is enqueued (one per submission, rubric version and
source: a unique constraint), and a task claims it with a conditional update, so a retried
or redelivered task grades nothing twice. The worker renews the claim's lease while it
grades; if the worker dies, the recovery sweep queues the proposal again. When the
language model is unreachable the proposal goes back to queued and the task retries
later; after the last retry it is marked failed and the essay waits for the teacher, who
can grade it or try the AI again. A permanent failure (a parameter or schema the server
refuses, an essay over its context) fails at once, with its reason on the review page.
"""

from __future__ import annotations

import logging

from celery import shared_task

from ai.llm import LLMBadResponse, LLMError, LLMUnavailable, llm_error_stored
from config.celery import enqueue_on_commit
from grading import proposals, training

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
    claim = proposals.proposal_claim(proposal_id=proposal_id)
    if claim is None:
        return None
    try:
        with claim.lease():
            # A retry after an unusable answer asks differently (a higher temperature).
            proposals.proposal_run_llm(claim=claim, retry=self.request.retries)
    except LLMError as error:
        detail = llm_error_stored(error)
        retries = self.request.retries
        # Permanent (offline mode, a refused parameter or schema, a prompt over the
        # context): asking again cannot help, so the proposal fails at once and the review
        # page says why. Transient (unreachable, overloaded) or an unusable answer: retried.
        transient = not error.permanent and isinstance(error, (LLMUnavailable, LLMBadResponse))
        bound = LLM_RETRIES if isinstance(error, LLMUnavailable) else BAD_RESPONSE_RETRIES
        if not transient or retries >= bound:
            logger.warning("AI grading of proposal %s failed: %s", proposal_id, detail)
            proposals.proposal_fail(proposal_id=proposal_id, error=detail)
            return "failed"
        countdown = retry_countdown(retries)
        proposals.proposal_requeue(proposal_id=proposal_id, error=detail, delay=countdown)
        raise self.retry(countdown=countdown, max_retries=bound) from error
    except Exception as error:
        proposals.proposal_fail(proposal_id=proposal_id, error=repr(error))
        raise
    return "done"


@shared_task(name="grading.tasks.proposal_scorer", acks_late=True)
def proposal_scorer(proposal_id: int) -> str | None:
    """Score one proposal with the assignment's learned scorer."""
    claim = proposals.proposal_claim(proposal_id=proposal_id)
    if claim is None:
        return None
    try:
        with claim.lease():
            proposals.proposal_run_scorer(claim=claim)
    except Exception as error:
        proposals.proposal_fail(proposal_id=proposal_id, error=repr(error))
        raise
    return "done"


@shared_task(name="grading.tasks.scorer_train", acks_late=True)
def scorer_train(assignment_id: int) -> int | None:
    """Refit the assignment's learned scorer on its confirmed grades."""
    stored = training.scorer_train(assignment_id=assignment_id)
    return stored.training_size if stored else None
