"""The one module that talks to the language model server (the ``openai`` SDK).

The server is vLLM, or anything else that speaks OpenAI's chat-completions API, at
``LLM_BASE_URL``; an empty ``LLM_BASE_URL`` means offline mode and nothing here is called.

- ``chat_stream`` streams a reply as text deltas and records a usage record when it ends
  (finished, stopped by the caller, or failed), so every stored reply can say which model
  and prompt version produced it, its token counts and its time to first token.
- ``chat_json`` asks for JSON constrained by a JSON schema (vLLM's structured outputs) and
  checks the reply against the schema before anyone trusts it.

Every call, whatever its outcome, is accounted for once its usage is final: one row in the
ledger and its metrics (``ai.ledger.llm_call_record``, through ``_ledger_record``). Callers
say what a call is for with ``call=LLMCallFor(purpose=..., user_id=..., course_id=...)``.

Failures surface as ``LLMError`` subclasses whose ``str()`` a student may be shown; the
technical cause is in ``.detail`` (and ``__cause__``) for the logs. Transient failures
(connection errors, timeouts, 429, 5xx) are retried with exponential backoff, but never
once a stream has delivered text: the caller has shown it already, and a second
generation would not continue the same sentence. A process-wide semaphore bounds the
requests in flight to ``LLM_MAX_CONCURRENCY`` so a burst of tasks queues here instead of
overrunning the server.

The SDK client and the semaphore are built on first use, never at import time, and rebuilt
when the ``LLM_*`` settings change (tests point them at a local server).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from enum import StrEnum
from typing import Any

from django.conf import settings
from django.utils.translation import gettext_noop

from ai.ledger import LLMCallFor, Outcome, llm_call_record
from ai.llm_capabilities import (
    Capabilities,
    capabilities_clear,
    capabilities_for,
    prompt_tokens_count,
    tokens_count,
)
from ai.models import LLMCall

logger = logging.getLogger(__name__)

Message = Mapping[str, Any]

# vLLM accepts any key unless it was started with --api-key; the SDK refuses an empty one.
_PLACEHOLDER_API_KEY = "EMPTY"
_MAX_BACKOFF_SECONDS = 8.0
_DEFAULT_BACKOFF_SECONDS = 0.5
_RETRYABLE_STATUSES = frozenset({408, 429})


# --- errors ----------------------------------------------------------------------------


class LLMError(Exception):
    """A failed call to the language model. ``str()`` is safe to show a student.

    ``permanent``: asking again the same way cannot help (a refused parameter, a schema
    the server cannot honour, a prompt over its context), so callers fail the job at once
    instead of retrying; the others (timeouts, overload) are worth a later retry.
    """

    student_message = gettext_noop("The tutor could not answer just now; try again.")
    # The same, for whoever runs a job that failed (a teacher's grading, practice).
    reason = gettext_noop("The language model could not answer; try again later.")
    # A short fixed word for metrics (tutoring_llm_errors{kind}).
    kind = "error"
    permanent = False

    def __init__(
        self,
        message: str | None = None,
        *,
        detail: str = "",
        usage: LLMUsage | None = None,
        partial_text: str = "",
    ) -> None:
        super().__init__(message or self.student_message)
        self.detail = detail
        self.usage = usage
        self.partial_text = partial_text


class LLMUnavailable(LLMError):
    """The server could not be reached, timed out, or kept answering 429/5xx."""

    student_message = gettext_noop(
        "The tutor's language model is not reachable right now; try again in a minute."
    )
    reason = gettext_noop(
        "The language model server was not reachable or kept timing out; try again later."
    )
    kind = "unavailable"


class LLMNotConfigured(LLMUnavailable):
    """No LLM_BASE_URL: the product is in offline mode and should not have called."""

    permanent = True

    student_message = gettext_noop(
        "No language model is configured, so the tutor is in offline mode."
    )
    reason = gettext_noop("No language model is configured (offline mode).")
    kind = "not_configured"


class LLMBadResponse(LLMError):
    """The server answered with something unusable: malformed, cut off, or off-schema."""

    student_message = gettext_noop("The tutor's reply was cut off or could not be read; try again.")
    reason = gettext_noop(
        "The language model's answer was cut off or did not follow the required format, "
        "even after a correction was asked for."
    )
    kind = "bad_response"


class LLMRequestRejected(LLMError):
    """The server refused the request itself (HTTP 4xx other than 429), e.g. too long."""

    student_message = gettext_noop("The tutor could not take this request; try a shorter message.")
    reason = gettext_noop("The language model server refused the request.")
    kind = "rejected"
    permanent = True

    def __init__(self, message: str | None = None, *, status_code: int, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.status_code = status_code


class LLMContextExceeded(LLMRequestRejected):
    """The prompt does not fit the model's context window (the server said so, or our
    count did before sending)."""

    student_message = gettext_noop(
        "Your message is too long for the tutor to read; shorten your message and send it again."
    )
    reason = gettext_noop(
        "The request is longer than the language model can read at once (its context "
        "window); shorten the text or raise the server's context size."
    )
    kind = "context_exceeded"


class LLMUnsupported(LLMRequestRejected):
    """The server refused a parameter or a schema it cannot honour: asking again the same
    way cannot help; its administrator must change the server or the product's settings."""

    student_message = gettext_noop(
        "The language model server refused this request (it does not support something the "
        "product asked for); an administrator needs to check its settings."
    )
    reason = gettext_noop(
        "The language model server does not support what the product asked for (a "
        "parameter or structured output); an administrator needs to check the server."
    )
    kind = "unsupported"


def llm_error_stored(error: LLMError) -> str:
    """How a job stores its failure: the class (for ``failure_reason``) and the server's
    own words (for whoever reads the logs or the admin)."""
    return f"{type(error).__name__}: {error.detail or error}"


def failure_reason(stored: str) -> str:
    """The translated reason, for the page where the user looks, of a failure stored by
    ``llm_error_stored`` ('' when ``stored`` is no LLM failure)."""
    from django.utils.translation import gettext

    name = stored.split(":", 1)[0].strip()
    for cls in _error_classes():
        if cls.__name__ == name:
            return gettext(cls.reason)
    return ""


def _error_classes() -> list[type[LLMError]]:
    classes: list[type[LLMError]] = [LLMError]
    for cls in classes:
        classes.extend(cls.__subclasses__())
    return classes


def llm_error_observed(error: LLMError, *, prompt_version: str) -> None:
    """Count a failed call in metrics (tutoring_llm_errors by kind and purpose)."""
    from config.metrics import llm_error_counted

    llm_error_counted(kind=error.kind, purpose=_purpose(prompt_version))


def _purpose(prompt_version: str) -> str:
    """A short fixed word from a prompt version ("tutor-v1", "grade.v1"...): metrics
    labels must not take free text."""
    word = re.split(r"[-._]", prompt_version or "", maxsplit=1)[0].lower()
    return word if word.isalpha() and len(word) <= 20 else "other"


# --- usage -----------------------------------------------------------------------------


class LLMOutcome(StrEnum):
    FINISHED = "finished"
    STOPPED = "stopped"
    FAILED = "failed"


@dataclasses.dataclass(frozen=True)
class LLMUsage:
    """What one call cost and how it went; token counts are the server's own, or None."""

    model: str
    prompt_version: str
    outcome: LLMOutcome
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    time_to_first_token_s: float | None
    total_s: float
    queue_wait_s: float
    attempts: int
    # Where the token counts come from: "server" (its own report), "tokenizer" (counted
    # with the server's /tokenize), "bytes" (an upper bound by UTF-8 bytes) or "" (none).
    usage_source: str = "server"

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, for a JSONField next to the stored output."""
        return {**dataclasses.asdict(self), "outcome": self.outcome.value}


def _ledger_record(
    usage: LLMUsage | None,
    *,
    call: LLMCallFor | None,
    prompt_version: str,
    error: LLMError | None,
    messages: Sequence[Message],
    text: str,
    started: float,
    ended: bool = False,
) -> LLMCall | None:
    """The one hook: account for a call whose usage and outcome are final (``ai.ledger``).

    ``usage`` is None when the call failed before the server answered (``started`` then
    gives its duration); ``text`` is what arrived, for estimating tokens not reported.
    ``ended``: the reply ran to its end (finished, or stopped by ``should_stop``), so its
    language is checked when the call asks (``LLMCallFor.reply_language``).
    Returns the ledger row (None in offline mode, or when the database refused it).
    """
    if isinstance(error, LLMNotConfigured):
        return None  # offline mode: nothing was called
    if error is None:
        stopped = usage is not None and usage.outcome == LLMOutcome.STOPPED
        outcome = Outcome.STOPPED if stopped else Outcome.FINISHED
    elif isinstance(error, LLMUnavailable):
        outcome = Outcome.TRANSIENT_ERROR
    else:
        outcome = Outcome.PERMANENT_ERROR
    return llm_call_record(
        call=call,
        model=usage.model if usage else settings.LLM_MODEL,
        prompt_version=prompt_version,
        outcome=outcome,
        prompt_tokens=usage.prompt_tokens if usage else None,
        completion_tokens=usage.completion_tokens if usage else None,
        duration_s=usage.total_s if usage else time.monotonic() - started,
        ttft_s=usage.time_to_first_token_s if usage else None,
        queue_wait_s=usage.queue_wait_s if usage else None,
        attempts=usage.attempts if usage else None,
        error_kind=type(error).__name__ if error else "",
        messages=messages,
        text=text,
        # Counted here (the server's tokenizer, or the byte bound) when it reported none.
        counted=usage is not None and usage.usage_source not in ("server", ""),
        **_reply_language(call, text) if ended and error is None else {},
    )


def _reply_language(call: LLMCallFor | None, text: str) -> dict[str, Any]:
    """The reply's language check for its ledger row, when the call asks for one."""
    if call is None or call.reply_language is None:
        return {}
    try:
        return {"language_checked": True, "language_matches": call.reply_language(text)}
    except Exception:  # accounting must never fail a reply
        logger.exception("The language of a reply (%s) could not be checked", call)
        return {}


# --- configuration and the lazily built client -----------------------------------------


@dataclasses.dataclass(frozen=True)
class _Config:
    base_url: str
    model: str
    api_key: str
    timeout_s: float
    max_concurrency: int
    max_retries: int
    max_tokens: int
    backoff_s: float

    @classmethod
    def from_settings(cls) -> _Config:
        return cls(
            base_url=settings.LLM_BASE_URL,
            model=settings.LLM_MODEL,
            api_key=settings.LLM_API_KEY or _PLACEHOLDER_API_KEY,
            timeout_s=float(settings.LLM_TIMEOUT_SECONDS),
            max_concurrency=int(settings.LLM_MAX_CONCURRENCY),
            max_retries=int(settings.LLM_MAX_RETRIES),
            max_tokens=int(settings.LLM_MAX_TOKENS),
            backoff_s=float(
                getattr(settings, "LLM_RETRY_BACKOFF_SECONDS", _DEFAULT_BACKOFF_SECONDS)
            ),
        )


class _Runtime:
    def __init__(self, config: _Config) -> None:
        import openai

        self.config = config
        self.slots = threading.BoundedSemaphore(config.max_concurrency)
        self.client = openai.OpenAI(
            base_url=config.base_url,
            api_key=config.api_key,
            timeout=openai.Timeout(config.timeout_s, connect=min(config.timeout_s, 5.0)),
            # Retries happen here, where the semaphore and "has the stream delivered
            # text yet" are known; the SDK's own would retry blind to both.
            max_retries=0,
        )

    @contextmanager
    def slot(self) -> Iterator[float]:
        """Hold one of the LLM_MAX_CONCURRENCY request slots; yields seconds waited."""
        started = time.monotonic()
        # Waiting longer than a request may take means the server is badly backed up.
        if not self.slots.acquire(timeout=self.config.timeout_s):
            raise LLMUnavailable(
                "The tutor is busy with many students right now; try again in a minute.",
                detail=f"no free LLM slot within {self.config.timeout_s}s",
            )
        try:
            yield time.monotonic() - started
        finally:
            self.slots.release()


_runtime_lock = threading.Lock()
_runtime_current: _Runtime | None = None


def _runtime() -> _Runtime:
    global _runtime_current
    config = _Config.from_settings()
    if not config.base_url:
        raise LLMNotConfigured(detail="LLM_BASE_URL is empty")
    with _runtime_lock:
        if _runtime_current is None or _runtime_current.config != config:
            _runtime_current = _Runtime(config)
        return _runtime_current


__all__ = ["capabilities_clear"]  # re-exported: tests and settings changes reset it


def capabilities() -> Capabilities:
    """What the configured server supports (probed once, cached; see llm_capabilities)."""
    config = _runtime().config
    return capabilities_for(base_url=config.base_url, model=config.model, api_key=config.api_key)


def llm_context_tokens() -> int:
    """The model's context window: the server's own when it says, else LLM_CONTEXT_TOKENS."""
    if llm_is_configured():
        with suppress(Exception):
            told = capabilities().context_tokens
            if told:
                return int(told)
    return int(settings.LLM_CONTEXT_TOKENS)


def prompt_tokens(messages: Sequence[Message]) -> tuple[int, str]:
    """The prompt tokens of ``messages``, counted with the server's tokenizer when it has
    one, else bounded by bytes (never undercounted); and which of the two it was."""
    caps = capabilities() if llm_is_configured() else None
    api_key = _runtime().config.api_key if caps else ""
    return prompt_tokens_count(caps, list(messages), api_key=api_key)


def server_tokens_counter() -> Callable[[list[str]], int] | None:
    """Counts tokens with the server's own tokenizer (texts in, their tokens summed out,
    one request), or None when the server has none (or in offline mode)."""
    if not llm_is_configured():
        return None
    try:
        caps = capabilities()
    except Exception as error:  # noqa: BLE001 - budgeting falls back to the byte bound
        logger.warning("Could not learn the LLM server's capabilities: %r", error)
        return None
    if not caps.tokenize_form:
        return None
    api_key = _runtime().config.api_key
    return lambda texts: tokens_count(caps, texts, api_key=api_key)[0]


def text_fit(text: str, tokens: int) -> str:
    """The longest beginning of ``text`` (roughly: cut at a word) within ``tokens`` tokens,
    counted with the server's tokenizer when it has one, else by the UTF-8 byte bound."""
    from ai.llm_capabilities import bytes_bound

    tokens = max(tokens, 0)
    count = server_tokens_counter()
    measure = (lambda t: count([t])) if count is not None else bytes_bound
    for _attempt in range(4):
        used = measure(text)
        if used <= tokens:
            return text
        keep = int(len(text) * tokens / used * 0.95)
        cut = text[:keep]
        text = cut.rsplit(None, 1)[0] if " " in cut[-40:] else cut
    return text[: max(tokens // 4, 0)]


def _counted_usage(messages: Sequence[Message], text: str) -> tuple[int | None, int | None, str]:
    """Prompt and completion tokens of a call whose server reported none."""
    try:
        caps = capabilities()
        api_key = _runtime().config.api_key
        prompt, source = prompt_tokens_count(caps, list(messages), api_key=api_key)
        completion, _source = tokens_count(caps, [text], api_key=api_key)
    except Exception as error:  # noqa: BLE001 - accounting must never fail a reply
        logger.warning("Could not count the tokens of an LLM call: %r", error)
        return None, None, ""
    return prompt, completion, source


def llm_warm() -> None:
    """Load the SDK, open its client and learn the server's capabilities now (at process
    start, ``config/warmup.py``) rather than in the first reply. A server that does not
    answer yet is asked again on first use (``llm_capabilities``)."""
    if llm_is_configured():
        capabilities()


def llm_is_configured() -> bool:
    """False in offline mode (no LLM_BASE_URL)."""
    return bool(settings.LLM_BASE_URL)


def llm_supports_images() -> bool:
    return llm_is_configured() and bool(settings.LLM_SUPPORTS_IMAGES)


def llm_is_reachable(*, timeout_seconds: float = 2.0) -> bool:
    """Whether the server answers ``GET /models`` now (for health checks and mode banners)."""
    if not llm_is_configured():
        return False
    import openai

    client = _runtime().client.with_options(timeout=timeout_seconds, max_retries=0)
    try:
        client.models.list()
    except openai.OpenAIError:
        return False
    return True


# --- messages --------------------------------------------------------------------------


def user_message_with_image(*, text: str, image: bytes, mime_type: str = "image/png") -> Message:
    """A user message carrying text and one inline image (a data URL, as vLLM accepts)."""
    if not mime_type.startswith("image/"):
        raise ValueError(f"{mime_type!r} is not an image type.")
    encoded = base64.b64encode(image).decode("ascii")
    return {
        "role": "user",
        "content": [
            {"type": "text", "text": text},
            {"type": "image_url", "image_url": {"url": f"data:{mime_type};base64,{encoded}"}},
        ],
    }


# --- retries ---------------------------------------------------------------------------


_CONTEXT_RE = re.compile(
    r"context (length|window|size)|exceed\w*[ _]context|n_ctx|maximum context|too many tokens"
    r"|prompt is too long|input is too long|exceeds? the (available )?context",
    re.IGNORECASE,
)
_SCHEMA_RE = re.compile(r"response_format|json_schema|schema|grammar|structured", re.IGNORECASE)


def _error_text(exc: BaseException) -> str:
    """What the server said about an error (its message and body), for matching."""
    import openai

    parts = [str(getattr(exc, "message", "") or exc)]
    if isinstance(exc, openai.APIStatusError):
        with suppress(Exception):
            parts.append(exc.response.text[:2000])
    return " ".join(parts)


def _is_context_overflow(exc: BaseException) -> bool:
    import openai

    return (
        isinstance(exc, openai.APIStatusError)
        and exc.status_code in (400, 413, 422, 500)
        and bool(_CONTEXT_RE.search(_error_text(exc)))
    )


def _retry_now(exc: BaseException) -> bool:
    """Worth asking again at once, within this call: transient, but not a timeout. A
    server that timed out is still computing the abandoned request (a one-slot CPU server
    would queue the retry behind it), so a timeout goes back to the caller: the job
    retries later with backoff, or the learner is told to try again."""
    import openai

    return _is_transient(exc) and not isinstance(exc, openai.APITimeoutError)


def _is_transient(exc: BaseException) -> bool:
    """Worth asking again the same way: connection errors, timeouts, 408/429 and 5xx from
    overload (never a prompt over the context, whatever the status says)."""
    import openai

    if isinstance(exc, openai.APIConnectionError):  # timeouts included
        return True
    if isinstance(exc, openai.APIStatusError):
        if _is_context_overflow(exc):
            return False
        return exc.status_code in _RETRYABLE_STATUSES or exc.status_code >= 500
    return False


def _backoff_seconds(*, config: _Config, attempt: int, exc: BaseException) -> float:
    import openai

    delay = min(config.backoff_s * 2 ** (attempt - 1), _MAX_BACKOFF_SECONDS)
    # Jitter, so workers that failed together do not all come back together.
    delay *= random.uniform(0.5, 1.0)
    if isinstance(exc, openai.APIStatusError):
        retry_after = exc.response.headers.get("retry-after", "")
        with suppress(TypeError, ValueError):
            delay = max(delay, min(float(retry_after), _MAX_BACKOFF_SECONDS))
    return delay


def _translate(exc: BaseException, *, delivered: bool) -> LLMError:
    """The LLMError for an SDK (or decoding) error, with the cause as detail."""
    import openai

    if delivered:
        return LLMBadResponse(detail=f"stream broke after text was delivered: {exc!r}")
    if isinstance(exc, openai.APIStatusError):
        detail = f"HTTP {exc.status_code}: {exc.message}"
        if _is_context_overflow(exc):
            return LLMContextExceeded(detail=detail, status_code=exc.status_code)
        if _is_transient(exc):
            return LLMUnavailable(detail=detail)
        if exc.status_code in (400, 422, 501) or _SCHEMA_RE.search(_error_text(exc)):
            return LLMUnsupported(detail=detail, status_code=exc.status_code)
        return LLMRequestRejected(detail=detail, status_code=exc.status_code)
    if isinstance(exc, openai.APIConnectionError):
        return LLMUnavailable(detail=f"{type(exc).__name__}: {exc}")
    return LLMBadResponse(detail=f"{type(exc).__name__}: {exc}")


def _request_args(
    *,
    config: _Config,
    messages: Sequence[Message],
    max_tokens: int | None,
    temperature: float | None,
) -> dict[str, Any]:
    args: dict[str, Any] = {
        "model": config.model,
        "messages": [dict(m) for m in messages],
        "max_tokens": max_tokens or config.max_tokens,
    }
    if temperature is not None:
        args["temperature"] = temperature
    return args


# --- streaming -------------------------------------------------------------------------


def _chunks_stream(client: Any, args: dict[str, Any]) -> Any:
    """A streamed chat completion (the SDK's ``Stream``: iterate it, then ``close()``), its
    chunks as the server sent them (JSON objects).

    Through the SDK (its errors, timeouts and event parsing), but without building its
    typed model of every chunk: that cost about a millisecond of CPU per token, the
    largest part of a reply's CPU in the worker (``bench/turn_profile.py``).
    """
    import openai

    return client.post(
        "/chat/completions",
        cast_to=object,
        body={**args, "stream": True, "stream_options": {"include_usage": True}},
        stream=True,
        stream_cls=openai.Stream[object],
    )


class ChatStream:
    """The text deltas of one streamed reply; iterate it once.

    Nothing is sent until iteration starts. When it ends, ``usage`` holds the record and
    ``text`` everything received. Breaking out of the loop (or ``close()``) closes the HTTP
    stream, which makes vLLM stop generating; the outcome is then ``stopped``.
    """

    def __init__(
        self,
        *,
        messages: Sequence[Message],
        prompt_version: str,
        max_tokens: int | None,
        temperature: float | None,
        should_stop: Callable[[], bool] | None,
        call: LLMCallFor | None = None,
    ) -> None:
        self._runtime = _runtime()
        self._call = call
        self._messages = messages
        self._prompt_version = prompt_version
        self._max_tokens = max_tokens
        self._temperature = temperature
        self._should_stop = should_stop
        self._parts: list[str] = []
        self._iterator = self._run()
        self.usage: LLMUsage | None = None
        # The call's ledger row once the stream has ended (None before, or if not written).
        self.ledger_row: LLMCall | None = None

    @property
    def text(self) -> str:
        return "".join(self._parts)

    def __iter__(self) -> Iterator[str]:
        return self._iterator

    def __next__(self) -> str:
        return next(self._iterator)

    def close(self) -> None:
        self._iterator.close()

    def __enter__(self) -> ChatStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _run(self) -> Generator[str, None, None]:
        config = self._runtime.config
        args = _request_args(
            config=config,
            messages=self._messages,
            max_tokens=self._max_tokens,
            temperature=self._temperature,
        )
        started = time.monotonic()
        first_token_at: float | None = None
        queue_wait = 0.0
        attempts = 0
        outcome = LLMOutcome.STOPPED  # what a consumer that walks away leaves behind
        finish_reason: str | None = None
        model = config.model
        prompt_tokens: int | None = None
        completion_tokens: int | None = None
        failure: LLMError | None = None
        ended = False  # ran to its end, rather than closed by the consumer

        def record(final_outcome: LLMOutcome) -> LLMUsage:
            source = "server"
            counted_prompt, counted_completion = prompt_tokens, completion_tokens
            reached = first_token_at is not None or final_outcome != LLMOutcome.FAILED
            if reached and (prompt_tokens is None or completion_tokens is None):
                # No usage in the stream (some servers ignore stream_options, and a
                # stopped stream never gets it): count what was sent and received, so
                # budgets and the usage page see real numbers.
                counted_prompt, counted_completion, source = _counted_usage(
                    self._messages, self.text
                )
                if prompt_tokens is not None:
                    counted_prompt = prompt_tokens
            self.usage = LLMUsage(
                model=model,
                prompt_version=self._prompt_version,
                outcome=final_outcome,
                finish_reason=finish_reason,
                prompt_tokens=counted_prompt,
                completion_tokens=counted_completion,
                usage_source=source,
                time_to_first_token_s=(
                    None if first_token_at is None else first_token_at - started
                ),
                total_s=time.monotonic() - started,
                queue_wait_s=queue_wait,
                attempts=attempts,
            )
            return self.usage

        try:
            while True:
                attempts += 1
                try:
                    with self._runtime.slot() as waited:
                        queue_wait += waited
                        stream = _chunks_stream(self._runtime.client, args)
                        try:
                            for chunk in stream:
                                if not isinstance(chunk, dict):
                                    continue  # not a chunk: nothing to read in it
                                model = chunk.get("model") or model
                                usage = chunk.get("usage")
                                if isinstance(usage, dict):
                                    prompt_tokens = usage.get("prompt_tokens")
                                    completion_tokens = usage.get("completion_tokens")
                                for choice in (chunk.get("choices") or [])[:1]:
                                    finish_reason = choice.get("finish_reason") or finish_reason
                                    delta = (choice.get("delta") or {}).get("content")
                                    if delta:
                                        if first_token_at is None:
                                            first_token_at = time.monotonic()
                                        self._parts.append(delta)
                                        yield delta
                                if self._should_stop is not None and self._should_stop():
                                    ended = True
                                    return
                        finally:
                            stream.close()
                    if finish_reason is None:
                        # The SDK ends quietly when the body ends without [DONE]; a reply
                        # that never said why it finished was cut off.
                        raise LLMBadResponse(detail="the stream ended without a finish reason")
                    outcome = LLMOutcome.FINISHED
                    ended = True
                    return
                except LLMError:
                    raise
                except Exception as exc:
                    delivered = first_token_at is not None
                    if not delivered and _retry_now(exc) and attempts <= config.max_retries:
                        delay = _backoff_seconds(config=config, attempt=attempts, exc=exc)
                        logger.warning(
                            "LLM stream attempt %d failed (%r); retrying in %.2fs",
                            attempts,
                            exc,
                            delay,
                        )
                        time.sleep(delay)
                        continue
                    raise _translate(exc, delivered=delivered) from exc
        except LLMError as error:
            outcome = LLMOutcome.FAILED
            failure = error
            error.usage = record(outcome)
            error.partial_text = self.text
            llm_error_observed(error, prompt_version=self._prompt_version)
            logger.warning("LLM stream failed: %s (%s)", error.detail, error.usage)
            raise
        finally:
            if self.usage is None:
                record(outcome)
            self.ledger_row = _ledger_record(
                self.usage,
                call=self._call,
                prompt_version=self._prompt_version,
                error=failure,
                messages=self._messages,
                text=self.text,
                started=started,
                ended=ended,
            )


def chat_stream(
    *,
    messages: Sequence[Message],
    prompt_version: str,
    max_tokens: int | None = None,
    temperature: float | None = None,
    should_stop: Callable[[], bool] | None = None,
    call: LLMCallFor | None = None,
) -> ChatStream:
    """Stream a reply to ``messages``; iterate the result for text deltas.

    ``should_stop`` is called after every chunk received (keep it cheap); when it returns
    True the stream is closed and what arrived so far is kept, with outcome ``stopped``.
    Raises ``LLMNotConfigured`` at once in offline mode; other ``LLMError``s come out of
    the iteration, carrying ``usage`` and ``partial_text``. ``call`` says what the call is
    for, in the ledger.
    """
    return ChatStream(
        messages=messages,
        prompt_version=prompt_version,
        max_tokens=max_tokens,
        temperature=temperature,
        should_stop=should_stop,
        call=call,
    )


# --- structured output -----------------------------------------------------------------

# A string bound longer than this goes from the schema sent to the server: grammar engines
# compile ``maxLength: 1000`` into a thousand states (llama.cpp's crashed on it); callers
# bound lengths themselves after validation.
SERVER_MAX_LENGTH = 200
REPAIR_MESSAGE = (
    "Your reply could not be used: {problem}. Reply again with only the corrected JSON "
    "object, matching the schema, and nothing else."
)
PLAIN_JSON_INSTRUCTION = (
    "\n\nReply with one JSON object only (no prose, no code fence) that matches this JSON "
    "schema:\n{schema}"
)


# An integer bounded to at most this many values is also sent as an ``enum`` of them:
# llama-cpp-python's grammar ignores ``minimum``/``maximum`` (SmolLM2 answered 742 for a
# score of 0-3), while every grammar engine honours an enum.
SERVER_ENUM_RANGE = 64


def schema_for_server(schema: Mapping[str, Any]) -> dict[str, Any]:
    """``schema`` as grammar engines can enforce it: without long ``maxLength`` bounds (see
    SERVER_MAX_LENGTH), and small integer ranges spelt out as enums (SERVER_ENUM_RANGE)."""

    def strip(node: Any) -> Any:
        if isinstance(node, Mapping):
            kept = {
                key: strip(value)
                for key, value in node.items()
                if not (key == "maxLength" and isinstance(value, int) and value > SERVER_MAX_LENGTH)
            }
            low, high = kept.get("minimum"), kept.get("maximum")
            if (
                kept.get("type") == "integer"
                and "enum" not in kept
                and isinstance(low, int)
                and isinstance(high, int)
                and 0 <= high - low < SERVER_ENUM_RANGE
            ):
                kept["enum"] = list(range(low, high + 1))
            return kept
        if isinstance(node, list):
            return [strip(item) for item in node]
        return node

    return strip(schema)


def numbers_bound(data: Any, schema: Mapping[str, Any]) -> Any:
    """``data`` with each ``number`` that the schema bounds brought inside its bounds.

    Grammar engines enforce a number's type but not its ``minimum``/``maximum``
    (llama-cpp-python's; SmolLM2 answered a confidence of 0-1 with 2): like string
    lengths, the product bounds numbers itself rather than fail a whole answer over one.
    Integers are sent as enums (``schema_for_server``), so they are never moved here.
    """
    if isinstance(data, dict) and isinstance(schema.get("properties"), Mapping):
        properties = schema["properties"]
        return {
            key: numbers_bound(value, properties[key]) if key in properties else value
            for key, value in data.items()
        }
    if isinstance(data, list) and isinstance(schema.get("items"), Mapping):
        return [numbers_bound(item, schema["items"]) for item in data]
    if (
        schema.get("type") == "number"
        and "enum" not in schema
        and isinstance(data, int | float)
        and not isinstance(data, bool)
    ):
        low, high = schema.get("minimum"), schema.get("maximum")
        bounded = max(data, low) if isinstance(low, int | float) else data
        bounded = min(bounded, high) if isinstance(high, int | float) else bounded
        if bounded != data:
            logger.info("LLM answered %s outside [%s, %s]; bounded to %s", data, low, high, bounded)
        return bounded
    return data


class _FormRefused(Exception):
    """The server refused this structured-output form; the next one may work."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


def _structured_args(
    form: str, *, args: dict[str, Any], schema: dict[str, Any], schema_name: str
) -> dict[str, Any]:
    args = {**args, "messages": [dict(m) for m in args["messages"]]}
    if form == "json_schema":
        args["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": schema_name, "schema": schema, "strict": True},
        }
    elif form == "json_object_schema":
        args["response_format"] = {"type": "json_object", "schema": schema}
    elif form == "ollama_format":
        args["extra_body"] = {"format": schema}
    if form in ("plain", "ollama_format"):
        # Unconstrained: the schema goes in the prompt, and the reply is validated here.
        instruction = PLAIN_JSON_INSTRUCTION.format(schema=json.dumps(schema))
        messages = args["messages"]
        if messages and messages[0].get("role") == "system":
            messages[0] = {**messages[0], "content": f"{messages[0]['content']}{instruction}"}
        else:
            messages.insert(0, {"role": "system", "content": instruction.strip()})
    return args


def _json_from_text(text: str) -> Any:
    """The JSON in a reply; unconstrained models wrap it in a code fence or prose. A raw
    line break or tab inside a string is taken as written (``strict=False``): SmolLM2 under
    llama-cpp-python's grammar wrote them, and they carry no ambiguity."""
    try:
        return json.loads(text, strict=False)
    except json.JSONDecodeError:
        start, end = text.find("{"), text.rfind("}")
        if 0 <= start < end:
            with suppress(json.JSONDecodeError):
                return json.loads(text[start : end + 1], strict=False)
        raise


def chat_json(
    *,
    messages: Sequence[Message],
    schema: Mapping[str, Any],
    schema_name: str,
    prompt_version: str,
    max_tokens: int | None = None,
    temperature: float | None = None,
    call: LLMCallFor | None = None,
) -> tuple[dict[str, Any], LLMUsage]:
    """A JSON object that satisfies ``schema``, and the usage record of the call.

    The output is constrained in the best form the server supports (see
    ``llm_capabilities``: ``json_schema``, the server's own form, or plain JSON asked for
    in the prompt), learnt per server: a form the server refuses is not asked again. The
    reply is validated here (against the schema less its long ``maxLength`` bounds, which
    callers enforce by cutting), and a reply that fails gets one repair attempt that tells
    the model what was wrong. Transient failures are retried with backoff; a refused
    request or a prompt over the context raise a permanent ``LLMRequestRejected``.
    Raises ``LLMBadResponse`` when the reply is still not valid JSON for the schema.
    ``call`` says what the call is for, in the ledger.
    """
    started = time.monotonic()
    try:
        data, usage = _chat_json(
            messages=messages,
            schema=schema,
            schema_name=schema_name,
            prompt_version=prompt_version,
            max_tokens=max_tokens,
            temperature=temperature,
        )
    except LLMError as error:
        llm_error_observed(error, prompt_version=prompt_version)
        _ledger_record(
            error.usage,
            call=call,
            prompt_version=prompt_version,
            error=error,
            messages=messages,
            text=error.partial_text,
            started=started,
        )
        raise
    _ledger_record(
        usage,
        call=call,
        prompt_version=prompt_version,
        error=None,
        messages=messages,
        text=json.dumps(data),  # read only when the server reported no usage
        started=started,
    )
    return data, usage


def _chat_json(
    *,
    messages: Sequence[Message],
    schema: Mapping[str, Any],
    schema_name: str,
    prompt_version: str,
    max_tokens: int | None,
    temperature: float | None,
) -> tuple[dict[str, Any], LLMUsage]:
    """``chat_json`` less its accounting."""
    import jsonschema

    runtime = _runtime()
    config = runtime.config
    caps = capabilities()
    jsonschema.validators.validator_for(schema).check_schema(schema)
    server_schema = schema_for_server(schema)
    base_args = _request_args(
        config=config, messages=messages, max_tokens=max_tokens, temperature=temperature
    )
    started = time.monotonic()
    totals = {"attempts": 0, "prompt": 0, "completion": 0}
    queue_wait_s = 0.0
    sources: set[str] = set()
    last_model = config.model

    def usage(outcome: LLMOutcome, finish_reason: str | None) -> LLMUsage:
        return LLMUsage(
            model=last_model,
            prompt_version=prompt_version,
            outcome=outcome,
            finish_reason=finish_reason,
            prompt_tokens=totals["prompt"] if sources else None,
            completion_tokens=totals["completion"] if sources else None,
            time_to_first_token_s=None,
            total_s=time.monotonic() - started,
            queue_wait_s=queue_wait_s,
            attempts=totals["attempts"],
            usage_source="+".join(sorted(sources)),
        )

    def account(completion: Any, sent: dict[str, Any], text: str) -> None:
        nonlocal last_model
        last_model = getattr(completion, "model", None) or last_model
        if completion.usage is not None and completion.usage.prompt_tokens is not None:
            totals["prompt"] += completion.usage.prompt_tokens
            totals["completion"] += completion.usage.completion_tokens or 0
            sources.add("server")
            return
        prompt, reply, source = _counted_usage(sent["messages"], text)
        if source:
            totals["prompt"] += prompt or 0
            totals["completion"] += reply or 0
            sources.add(source)

    def complete(args: dict[str, Any], *, structured: bool) -> Any:
        nonlocal queue_wait_s
        attempts = 0
        while True:
            attempts += 1
            totals["attempts"] += 1
            try:
                with runtime.slot() as waited:
                    queue_wait_s += waited
                    return runtime.client.chat.completions.create(**args)
            except LLMError as error:
                error.usage = usage(LLMOutcome.FAILED, None)
                raise
            except Exception as exc:
                import openai

                if (
                    structured
                    and isinstance(exc, openai.APIStatusError)
                    and not _is_context_overflow(exc)
                    and (exc.status_code in (400, 422, 501) or exc.status_code == 500)
                ):
                    # Refused, or a server that answers an unsupported form with 500
                    # (llama-cpp-python): the next form decides which it was.
                    raise _FormRefused(exc) from exc
                if _retry_now(exc) and attempts <= config.max_retries:
                    delay = _backoff_seconds(config=config, attempt=attempts, exc=exc)
                    logger.warning(
                        "LLM JSON attempt %d failed (%r); retrying in %.2fs", attempts, exc, delay
                    )
                    time.sleep(delay)
                    continue
                failure = _translate(exc, delivered=False)
                failure.usage = usage(LLMOutcome.FAILED, None)
                logger.warning("LLM JSON call failed: %s", failure.detail)
                raise failure from exc

    forms = caps.structured_forms()
    repaired = False
    conversation: list[dict[str, Any]] = [dict(m) for m in base_args["messages"]]
    form_index = 0
    failed_forms: list[str] = []  # refused by this call: learnt once a later form works
    while True:
        form = forms[form_index]
        args = _structured_args(
            form,
            args={**base_args, "messages": conversation},
            schema=server_schema,
            schema_name=schema_name,
        )
        try:
            completion = complete(args, structured=form != "plain")
        except _FormRefused as refused:
            if form_index + 1 < len(forms):
                logger.warning(
                    "The LLM server refused structured output as %s (%s); trying %s",
                    form,
                    _error_text(refused.cause)[:300],
                    forms[form_index + 1],
                )
                failed_forms.append(form)
                form_index += 1
                continue
            # Every form refused: the request itself is refused (a parameter, the model),
            # and asking again cannot help.
            error = _translate(refused.cause, delivered=False)
            if not error.permanent:
                error = LLMUnsupported(
                    detail=f"structured output refused: {error.detail}", status_code=500
                )
            error.usage = usage(LLMOutcome.FAILED, None)
            logger.warning("LLM JSON call refused: %s", error.detail)
            raise error from refused.cause
        # A form worked: the ones refused before it are not asked of this server again.
        caps.refused_forms.update(failed_forms)
        failed_forms.clear()
        caps.structured_form = form
        choice = completion.choices[0] if completion.choices else None
        text = (choice.message.content if choice else None) or ""
        finish_reason = choice.finish_reason if choice else None
        account(completion, args, text)
        problem = ""
        data: Any = None
        if finish_reason == "length":
            problem = "it hit max_tokens before the JSON was complete"
        else:
            try:
                data = _json_from_text(text)
            except json.JSONDecodeError as exc:
                problem = f"it is not JSON ({exc})"
            else:
                data = numbers_bound(data, server_schema)
                try:
                    jsonschema.validate(data, server_schema)
                except jsonschema.ValidationError as exc:
                    problem = f"it does not match the schema ({exc.message[:300]})"
                else:
                    if not isinstance(data, dict):
                        problem = f"it is {type(data).__name__}, not an object"
        if not problem:
            return data, usage(LLMOutcome.FINISHED, finish_reason)
        if repaired or finish_reason == "length":
            raise LLMBadResponse(
                detail=f"{schema_name} reply: {problem}",
                usage=usage(LLMOutcome.FAILED, finish_reason),
                partial_text=text,
            )
        # One repair: the model sees its reply and what was wrong with it, so the second
        # attempt is not the same question again.
        repaired = True
        logger.warning("LLM %s reply unusable (%s); asking for a repair", schema_name, problem)
        conversation = [
            *conversation,
            {"role": "assistant", "content": text[:4000]},
            {"role": "user", "content": REPAIR_MESSAGE.format(problem=problem)},
        ]
