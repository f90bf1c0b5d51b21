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
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from enum import StrEnum
from typing import TYPE_CHECKING, Any, cast

from django.conf import settings
from django.utils.translation import gettext_noop

from ai.ledger import LLMCallFor, Outcome, llm_call_record

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionChunk

logger = logging.getLogger(__name__)

Message = Mapping[str, Any]

# vLLM accepts any key unless it was started with --api-key; the SDK refuses an empty one.
_PLACEHOLDER_API_KEY = "EMPTY"
_MAX_BACKOFF_SECONDS = 8.0
_DEFAULT_BACKOFF_SECONDS = 0.5
_RETRYABLE_STATUSES = frozenset({408, 429})


# --- errors ----------------------------------------------------------------------------


class LLMError(Exception):
    """A failed call to the language model. ``str()`` is safe to show a student."""

    student_message = gettext_noop("The tutor could not answer just now; try again.")

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


class LLMNotConfigured(LLMUnavailable):
    """No LLM_BASE_URL: the product is in offline mode and should not have called."""

    student_message = gettext_noop(
        "No language model is configured, so the tutor is in offline mode."
    )


class LLMBadResponse(LLMError):
    """The server answered with something unusable: malformed, cut off, or off-schema."""

    student_message = gettext_noop("The tutor's reply was cut off or could not be read; try again.")


class LLMRequestRejected(LLMError):
    """The server refused the request itself (HTTP 4xx other than 429), e.g. too long."""

    student_message = gettext_noop("The tutor could not take this request; try a shorter message.")

    def __init__(self, message: str | None = None, *, status_code: int, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.status_code = status_code


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
) -> None:
    """The one hook: account for a call whose usage and outcome are final (``ai.ledger``).

    ``usage`` is None when the call failed before the server answered (``started`` then
    gives its duration); ``text`` is what arrived, for estimating tokens not reported.
    """
    if isinstance(error, LLMNotConfigured):
        return  # offline mode: nothing was called
    if error is None:
        stopped = usage is not None and usage.outcome == LLMOutcome.STOPPED
        outcome = Outcome.STOPPED if stopped else Outcome.FINISHED
    elif isinstance(error, LLMUnavailable):
        outcome = Outcome.TRANSIENT_ERROR
    else:
        outcome = Outcome.PERMANENT_ERROR
    llm_call_record(
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
    )


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


def _is_transient(exc: BaseException) -> bool:
    import openai

    if isinstance(exc, openai.APIConnectionError):  # timeouts included
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in _RETRYABLE_STATUSES or exc.status_code >= 500
    return False


def _backoff_seconds(*, config: _Config, attempt: int, exc: BaseException) -> float:
    import openai

    delay = min(config.backoff_s * 2 ** (attempt - 1), _MAX_BACKOFF_SECONDS)
    # Jitter, so workers that failed together do not all come back together.
    delay *= random.uniform(0.5, 1.0)
    if isinstance(exc, openai.APIStatusError):
        retry_after = exc.response.headers.get("retry-after")
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
        if _is_transient(exc):
            return LLMUnavailable(detail=detail)
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

    def _run(self) -> Iterator[str]:
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

        def record(final_outcome: LLMOutcome) -> LLMUsage:
            self.usage = LLMUsage(
                model=model,
                prompt_version=self._prompt_version,
                outcome=final_outcome,
                finish_reason=finish_reason,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
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
                        stream = self._runtime.client.chat.completions.create(
                            **args, stream=True, stream_options={"include_usage": True}
                        )
                        try:
                            for chunk in cast("Iterator[ChatCompletionChunk]", stream):
                                model = chunk.model or model
                                if chunk.usage is not None:
                                    prompt_tokens = chunk.usage.prompt_tokens
                                    completion_tokens = chunk.usage.completion_tokens
                                for choice in chunk.choices[:1]:
                                    finish_reason = choice.finish_reason or finish_reason
                                    delta = choice.delta.content if choice.delta else None
                                    if delta:
                                        if first_token_at is None:
                                            first_token_at = time.monotonic()
                                        self._parts.append(delta)
                                        yield delta
                                if self._should_stop is not None and self._should_stop():
                                    return
                        finally:
                            stream.close()
                    if finish_reason is None:
                        # The SDK ends quietly when the body ends without [DONE]; a reply
                        # that never said why it finished was cut off.
                        raise LLMBadResponse(detail="the stream ended without a finish reason")
                    outcome = LLMOutcome.FINISHED
                    return
                except LLMError:
                    raise
                except Exception as exc:
                    delivered = first_token_at is not None
                    if not delivered and _is_transient(exc) and attempts <= config.max_retries:
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
            logger.warning("LLM stream failed: %s (%s)", error.detail, error.usage)
            raise
        finally:
            if self.usage is None:
                record(outcome)
            _ledger_record(
                self.usage,
                call=self._call,
                prompt_version=self._prompt_version,
                error=failure,
                messages=self._messages,
                text=self.text,
                started=started,
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

    The server is asked to constrain its output to the schema; the reply is validated
    again here because a truncated or unconstrained reply would otherwise pass as data.
    Raises ``LLMBadResponse`` when it is not valid JSON or does not match the schema.
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
    import jsonschema

    runtime = _runtime()
    config = runtime.config
    jsonschema.validators.validator_for(schema).check_schema(schema)
    args = _request_args(
        config=config, messages=messages, max_tokens=max_tokens, temperature=temperature
    )
    args["response_format"] = {
        "type": "json_schema",
        "json_schema": {"name": schema_name, "schema": dict(schema), "strict": True},
    }
    started = time.monotonic()
    queue_wait = 0.0
    attempts = 0

    def usage_of(completion: Any, outcome: LLMOutcome, finish_reason: str | None) -> LLMUsage:
        elapsed = time.monotonic() - started
        return LLMUsage(
            model=getattr(completion, "model", None) or config.model,
            prompt_version=prompt_version,
            outcome=outcome,
            finish_reason=finish_reason,
            prompt_tokens=completion.usage.prompt_tokens if completion.usage else None,
            completion_tokens=completion.usage.completion_tokens if completion.usage else None,
            time_to_first_token_s=None,
            total_s=elapsed,
            queue_wait_s=queue_wait,
            attempts=attempts,
        )

    while True:
        attempts += 1
        try:
            with runtime.slot() as waited:
                queue_wait += waited
                completion = runtime.client.chat.completions.create(**args)
            break
        except LLMError:
            raise
        except Exception as exc:
            if _is_transient(exc) and attempts <= config.max_retries:
                delay = _backoff_seconds(config=config, attempt=attempts, exc=exc)
                logger.warning(
                    "LLM JSON attempt %d failed (%r); retrying in %.2fs", attempts, exc, delay
                )
                time.sleep(delay)
                continue
            error = _translate(exc, delivered=False)
            logger.warning("LLM JSON call failed: %s", error.detail)
            raise error from exc

    choice = completion.choices[0] if completion.choices else None
    text = (choice.message.content if choice else None) or ""
    finish_reason = choice.finish_reason if choice else None
    failed = usage_of(completion, LLMOutcome.FAILED, finish_reason)
    if finish_reason == "length":
        raise LLMBadResponse(
            detail=f"{schema_name} reply hit max_tokens before its JSON was complete",
            usage=failed,
            partial_text=text,
        )
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LLMBadResponse(
            detail=f"{schema_name} reply is not JSON: {exc}", usage=failed, partial_text=text
        ) from exc
    try:
        jsonschema.validate(data, schema)
    except jsonschema.ValidationError as exc:
        raise LLMBadResponse(
            detail=f"{schema_name} reply does not match its schema: {exc.message}",
            usage=failed,
            partial_text=text,
        ) from exc
    if not isinstance(data, dict):
        raise LLMBadResponse(
            detail=f"{schema_name} reply is {type(data).__name__}, not an object",
            usage=failed,
            partial_text=text,
        )
    return data, usage_of(completion, LLMOutcome.FINISHED, finish_reason)
