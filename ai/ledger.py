"""``llm_call_record``: the one place a call to the language model is accounted for.

The LLM client (``ai/llm.py``) calls it once per call, streamed or JSON, whatever the
outcome, when the call's usage is final. It writes the ``LLMCall`` row and reports the
call to Prometheus (``config.metrics.llm_call_observed``); the daily budget and the usage
page read the rows. Callers of the client say who and what a call is for with an
``LLMCallFor``.

Tokens are the server's own counts when it reported them (``tokens_source`` "server").
When it did not but the model did work (the caller stopped the stream before the usage
chunk, or the stream broke after text arrived), they are estimated with ``ai.tokens`` from
the prompt and the text received ("estimated", erring high). A call that failed before the
model answered anything has no tokens ("none").
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Mapping
from contextlib import nullcontext
from typing import Any

from django.db import DatabaseError, connection, transaction

from ai.models import LLMCall
from ai.tokens import messages_tokens_estimate, tokens_estimate
from config.metrics import llm_call_observed, reply_language_counted

logger = logging.getLogger(__name__)

Purpose = LLMCall.Purpose
Outcome = LLMCall.Outcome
TokensSource = LLMCall.TokensSource


@dataclasses.dataclass(frozen=True)
class LLMCallFor:
    """Who and what a call to the model is for: its ledger row's purpose, person, course."""

    purpose: str = Purpose.OTHER
    user_id: int | None = None
    course_id: int | None = None
    # For a reply whose language is checked (the tutor's): the reply's text in, whether it
    # is in the learner's language out (None: too short to tell). Asked once when the
    # reply has ended; the answer goes on the ledger row as it is written, and into the
    # metrics (``config.metrics.reply_language_counted``).
    reply_language: Callable[[str], bool | None] | None = None


def _tokens(
    *,
    outcome: str,
    prompt_tokens: int | None,
    completion_tokens: int | None,
    messages: Iterable[Mapping[str, Any]] | None,
    text: str,
) -> tuple[int | None, int | None, str]:
    if prompt_tokens is not None or completion_tokens is not None:
        return prompt_tokens, completion_tokens, TokensSource.SERVER
    if outcome == Outcome.STOPPED or text:
        # The model read the prompt (and wrote some of an answer) but never said how much.
        prompt = messages_tokens_estimate(messages or ())
        return prompt, tokens_estimate(text), TokensSource.ESTIMATED
    return None, None, TokensSource.NONE


def llm_call_record(
    *,
    call: LLMCallFor | None,
    model: str,
    prompt_version: str,
    outcome: str,
    prompt_tokens: int | None,
    completion_tokens: int | None,
    duration_s: float,
    ttft_s: float | None = None,
    queue_wait_s: float | None = None,
    attempts: int | None = None,
    error_kind: str = "",
    messages: Iterable[Mapping[str, Any]] | None = None,
    text: str = "",
    counted: bool = False,
    language_checked: bool = False,
    language_matches: bool | None = None,
) -> LLMCall | None:
    """Account for one finished call (any ``Outcome``): a ledger row and its metrics.

    ``messages`` and ``text`` (what was sent, what came back) are only read to estimate
    tokens the server did not report. ``counted``: the client counted the tokens itself
    (with the server's tokenizer, or its byte bound) because the server reported none;
    they are recorded as estimated. ``language_checked``: the reply's language was checked
    (``LLMCallFor.reply_language``), and ``language_matches`` says what it found. Returns
    the row, or None when the database refused
    it: the metrics are still reported, and the caller's reply is never lost for want of
    its ledger row (the failure is logged).
    """
    call = call or LLMCallFor()
    prompt, completion, source = _tokens(
        outcome=outcome,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        messages=messages,
        text=text,
    )
    if counted and source == TokensSource.SERVER:
        source = TokensSource.ESTIMATED
    llm_call_observed(
        model=model,
        purpose=call.purpose,
        outcome=outcome,
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_s=duration_s,
        time_to_first_token_s=ttft_s,
        slot_wait_s=queue_wait_s,
    )
    try:
        # Inside a caller's transaction, a savepoint: a refused row must not break it.
        # Outside one (a reply's worker), the INSERT alone: its own transaction already.
        with transaction.atomic() if connection.in_atomic_block else nullcontext():
            row = LLMCall.objects.create(
                user_id=call.user_id,
                course_id=call.course_id,
                purpose=call.purpose,
                model=model[:200],
                prompt_version=prompt_version[:100],
                prompt_tokens=prompt,
                completion_tokens=completion,
                tokens_source=source,
                ttft_seconds=ttft_s,
                duration_seconds=duration_s,
                queue_wait_seconds=queue_wait_s,
                attempts=attempts,
                outcome=outcome,
                error_kind=error_kind[:50],
                reply_language_matches=language_matches if language_checked else None,
            )
    except DatabaseError:
        logger.exception("The ledger row of an LLM call (%s, %s) was not written", call, outcome)
        return None
    if language_checked:
        reply_language_counted(purpose=call.purpose, matches=language_matches)
    return row
