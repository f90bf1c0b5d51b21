"""Prometheus metrics: HTTP requests, Celery queues and tasks, LLM calls, grading.

Other modules report through the helpers here and never touch ``prometheus_client``:

- ``llm_call_observed(...)`` for each call to the language model server, from the ledger
  (``ai.ledger.llm_call_record``, which the LLM client calls): tokens in and out, time to
  first token, duration, outcome, and an energy estimate when ``LLM_JOULES_PER_TOKEN`` is
  set;
- ``grading_observed(...)`` when a submission's proposed grade is done or has failed
  (``grading.proposals``).

Requests are counted by ``RequestMetricsMiddleware``; Celery tasks (run time, and the time
they waited in the queue) by signal hooks below; queue lengths are read from the broker
when ``/metrics`` is scraped.

Several processes (uvicorn workers, prefork children) each count their own part; with
``PROMETHEUS_MULTIPROC_DIR`` set (the Docker image sets it) they write to files there and
an exposition adds them up. Celery workers serve their metrics on ``METRICS_WORKER_PORT``
(Prometheus' own HTTP server, started when the worker is ready); the web serves ``/metrics``.
"""

from __future__ import annotations

import hmac
import os
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from celery import signals
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric

from config.logging import PUBLISHED_AT_MESSAGE_HEADER

_LLM_SECONDS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300)
_TASK_SECONDS_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900)

HTTP_REQUESTS = Counter(
    "tutoring_http_requests",
    "HTTP requests answered, by method, URL route and status code.",
    ["method", "route", "status"],
)
HTTP_REQUEST_SECONDS = Histogram(
    "tutoring_http_request_duration_seconds",
    "Time to the response headers (for a stream: until it starts), by method and route.",
    ["method", "route"],
)
TASK_SECONDS = Histogram(
    "tutoring_celery_task_duration_seconds",
    "Celery task run time, by task name and final state.",
    ["task", "state"],
    buckets=_TASK_SECONDS_BUCKETS,
)
TASK_QUEUE_WAIT_SECONDS = Histogram(
    "tutoring_celery_task_queue_wait_seconds",
    "Time from publishing a task to a worker starting it, by queue and task name.",
    ["queue", "task"],
    buckets=_TASK_SECONDS_BUCKETS,
)
LLM_REQUESTS = Counter(
    "tutoring_llm_requests",
    "Calls to the language model server, by model, purpose and outcome.",
    ["model", "purpose", "outcome"],
)
LLM_TOKENS = Counter(
    "tutoring_llm_tokens",
    "Tokens counted by the language model server: kind is prompt (in) or completion (out).",
    ["model", "purpose", "kind"],
)
LLM_TIME_TO_FIRST_TOKEN_SECONDS = Histogram(
    "tutoring_llm_time_to_first_token_seconds",
    "Time from sending a streamed request to its first token.",
    ["model", "purpose"],
    buckets=_LLM_SECONDS_BUCKETS,
)
LLM_REQUEST_SECONDS = Histogram(
    "tutoring_llm_request_duration_seconds",
    "Whole duration of a call to the language model server, retries included.",
    ["model", "purpose", "outcome"],
    buckets=_LLM_SECONDS_BUCKETS,
)
LLM_SLOT_WAIT_SECONDS = Histogram(
    "tutoring_llm_slot_wait_seconds",
    "Time a call waited for one of the LLM_MAX_CONCURRENCY slots of its process.",
    ["model", "purpose"],
    buckets=_LLM_SECONDS_BUCKETS,
)
LLM_ENERGY_JOULES = Counter(
    "tutoring_llm_energy_joules_estimated",
    "Estimated energy: prompt plus completion tokens times LLM_JOULES_PER_TOKEN (absent when"
    " unset).",
    ["model", "purpose"],
)
LLM_ERRORS = Counter(
    "tutoring_llm_errors",
    "Failed calls to the language model server by kind (unavailable, context_exceeded, "
    "unsupported, bad_response, rejected) and purpose.",
    ["kind", "purpose"],
)
LLM_REPLY_LANGUAGE = Counter(
    "tutoring_llm_reply_language",
    "Replies checked against the learner's language, by purpose and result (matches, other,"
    " unknown: too short to tell).",
    ["purpose", "result"],
)
GRADINGS = Counter(
    "tutoring_gradings",
    "Submissions given a proposed grade, by source (llm, scorer, ...) and outcome.",
    ["source", "outcome"],
)
GRADING_SECONDS = Histogram(
    "tutoring_grading_duration_seconds",
    "Time to produce a proposed grade, by source.",
    ["source"],
    buckets=_LLM_SECONDS_BUCKETS,
)


# --- helpers for the rest of the code -------------------------------------------------------


def llm_call_observed(
    *,
    model: str,
    purpose: str,
    outcome: str,
    prompt_tokens: int | None,
    completion_tokens: int | None,
    total_s: float,
    time_to_first_token_s: float | None = None,
    slot_wait_s: float | None = None,
) -> None:
    """Record one finished call (any outcome) to the language model server.

    ``purpose`` and ``outcome`` are short fixed words (``ai.models.LLMCall.Purpose`` and
    ``.Outcome``), never free text: every distinct value is a new time series. Energy is
    counted as the usage page counts it: every token, prompt and completion, times
    ``LLM_JOULES_PER_TOKEN``.
    """
    LLM_REQUESTS.labels(model, purpose, outcome).inc()
    LLM_REQUEST_SECONDS.labels(model, purpose, outcome).observe(total_s)
    if prompt_tokens:
        LLM_TOKENS.labels(model, purpose, "prompt").inc(prompt_tokens)
    if completion_tokens:
        LLM_TOKENS.labels(model, purpose, "completion").inc(completion_tokens)
    tokens = (prompt_tokens or 0) + (completion_tokens or 0)
    joules_per_token = settings.LLM_JOULES_PER_TOKEN
    if tokens and joules_per_token > 0:
        LLM_ENERGY_JOULES.labels(model, purpose).inc(tokens * joules_per_token)
    if time_to_first_token_s is not None:
        LLM_TIME_TO_FIRST_TOKEN_SECONDS.labels(model, purpose).observe(time_to_first_token_s)
    if slot_wait_s is not None:
        LLM_SLOT_WAIT_SECONDS.labels(model, purpose).observe(slot_wait_s)


def llm_error_counted(*, kind: str, purpose: str) -> None:
    """Count one failed call to the language model server (both are short fixed words)."""
    LLM_ERRORS.labels(kind, purpose).inc()


def reply_language_counted(*, purpose: str, matches: bool | None) -> None:
    """Count one reply checked against the learner's language."""
    result = "unknown" if matches is None else ("matches" if matches else "other")
    LLM_REPLY_LANGUAGE.labels(purpose, result).inc()


def grading_observed(*, source: str, outcome: str, seconds: float) -> None:
    """Record one proposed grade: ``source`` such as ``llm`` or ``scorer``; ``outcome``
    such as ``proposed`` or ``failed``."""
    GRADINGS.labels(source, outcome).inc()
    GRADING_SECONDS.labels(source).observe(seconds)


# --- requests -------------------------------------------------------------------------------


def _route(request: HttpRequest) -> str:
    match = getattr(request, "resolver_match", None)
    # The route pattern, not the path: ids in paths would make a series per row.
    return (match.route or match.view_name or "unnamed") if match else "unmatched"


class RequestMetricsMiddleware:
    """Counts requests and times them to the response headers. Sync and async capable."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        started = time.perf_counter()
        response = self.get_response(request)
        self._observe(request, response, started)
        return response

    async def __acall__(self, request: HttpRequest) -> Any:
        started = time.perf_counter()
        response = await self.get_response(request)
        self._observe(request, response, started)
        return response

    @staticmethod
    def _observe(request: HttpRequest, response: Any, started: float) -> None:
        route = _route(request)
        method = request.method or "?"
        HTTP_REQUESTS.labels(method, route, str(response.status_code)).inc()
        HTTP_REQUEST_SECONDS.labels(method, route).observe(time.perf_counter() - started)


# --- Celery ---------------------------------------------------------------------------------

# The publish time comes in a message header that config.logging adds: that module is
# loaded in every process that configures logging, so every publisher stamps it.
_task_started_at: dict[str, float] = {}


@signals.task_prerun.connect(weak=False, dispatch_uid="tutoring_metrics_prerun")
def _task_prerun(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    if task_id:
        _task_started_at[task_id] = time.perf_counter()
    request = getattr(task, "request", None)
    published_at = getattr(request, PUBLISHED_AT_MESSAGE_HEADER, None)
    if isinstance(published_at, int | float):
        queue = (getattr(request, "delivery_info", None) or {}).get("routing_key") or "?"
        TASK_QUEUE_WAIT_SECONDS.labels(queue, task.name).observe(
            max(0.0, time.time() - published_at)
        )


@signals.task_postrun.connect(weak=False, dispatch_uid="tutoring_metrics_postrun")
def _task_postrun(
    task_id: str | None = None, task: Any = None, state: str | None = None, **_: Any
) -> None:
    started = _task_started_at.pop(task_id, None) if task_id else None
    if started is not None and task is not None:
        TASK_SECONDS.labels(task.name, state or "UNKNOWN").observe(time.perf_counter() - started)


@signals.worker_ready.connect(weak=False, dispatch_uid="tutoring_metrics_worker_ready")
def _serve_worker_metrics(**_: Any) -> None:
    port = settings.METRICS_WORKER_PORT
    if port:
        start_http_server(port, registry=_process_registry())


@signals.worker_process_shutdown.connect(weak=False, dispatch_uid="tutoring_metrics_child_exit")
def _forget_dead_child(pid: int | None = None, **_: Any) -> None:
    if _multiprocess_dir():
        multiprocess.mark_process_dead(pid or os.getpid())


# --- exposition -----------------------------------------------------------------------------


def _multiprocess_dir() -> str:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


class _ProcessCollector:
    """This process's metrics, or with PROMETHEUS_MULTIPROC_DIR the sum over all of them."""

    def __init__(self) -> None:
        if _multiprocess_dir():
            self._registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(self._registry)
        else:
            self._registry = REGISTRY

    def collect(self) -> Iterable[Metric]:
        return self._registry.collect()


def _process_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(_ProcessCollector())
    return registry


class QueueLengthCollector:
    """Messages waiting in each Celery queue, read from the Redis broker at scrape time."""

    # kombu's Redis transport keeps priority levels 1-9 in separate lists next to the queue.
    _PRIORITY_SUFFIXES = ("", *(f"\x06\x16{level}" for level in range(1, 10)))

    def __init__(self, broker_url: str, queues: Iterable[str]) -> None:
        self.broker_url = broker_url
        self.queues = tuple(queues)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        import redis

        family = GaugeMetricFamily(
            "tutoring_celery_queue_length",
            "Messages waiting in a Celery queue (not yet taken by a worker).",
            labels=["queue"],
        )
        client = redis.Redis.from_url(self.broker_url, socket_timeout=1, socket_connect_timeout=1)
        try:
            with client.pipeline(transaction=False) as pipe:
                for queue in self.queues:
                    for suffix in self._PRIORITY_SUFFIXES:
                        pipe.llen(queue + suffix)
                lengths = pipe.execute()
        except redis.RedisError:
            return  # no sample is honest; the broker's own health is on /healthz
        finally:
            client.close()
        per_queue = len(self._PRIORITY_SUFFIXES)
        for index, queue in enumerate(self.queues):
            family.add_metric([queue], sum(lengths[index * per_queue : (index + 1) * per_queue]))
        yield family


_web_registry: CollectorRegistry | None = None
_web_registry_lock = threading.Lock()


def _registry_for_web() -> CollectorRegistry:
    global _web_registry
    with _web_registry_lock:
        if _web_registry is None:
            from config.celery import app as celery_app

            registry = _process_registry()
            queues = [queue.name for queue in celery_app.conf.task_queues or ()]
            registry.register(QueueLengthCollector(settings.CELERY_BROKER_URL, queues))
            _web_registry = registry
        return _web_registry


def _authorised(request: HttpRequest) -> bool:
    """Who may read /metrics: Prometheus with the bearer token (METRICS_TOKEN), a signed-in
    staff member, or anyone when METRICS_PUBLIC opens it explicitly."""
    if settings.METRICS_PUBLIC:
        return True
    token = settings.METRICS_TOKEN
    offered = request.headers.get("Authorization", "")
    if token and hmac.compare_digest(offered.encode(), f"Bearer {token}".encode()):
        return True
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_authenticated and user.is_staff)


@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """``/metrics`` in Prometheus' text format, for the bearer token (METRICS_TOKEN) or a
    staff session; open to all only with METRICS_PUBLIC."""
    if not _authorised(request):
        response = HttpResponse(
            "A bearer token (METRICS_TOKEN) or a staff sign-in is required.\n",
            status=401,
            content_type="text/plain",
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(generate_latest(_registry_for_web()), content_type=CONTENT_TYPE_LATEST)
