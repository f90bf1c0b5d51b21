"""Structured logs that say which request or task wrote them.

- ``RequestIdMiddleware`` gives every request an id (the proxy's ``X-Request-ID`` when it
  is well formed, a fresh one otherwise), returns it in the response header of the same
  name and writes one access line per request.
- ``ContextFilter`` puts ``request_id``, ``task_id`` and ``task_name`` on every record.
- ``JsonFormatter`` writes one JSON object per line (``LOG_FORMAT=json``).
- Celery signal hooks carry the request id from the web process into the tasks it
  enqueues (a message header), and set the task id while a task runs, so one request and
  everything it caused can be found with a single search. The same hook stamps the publish
  time, from which config.metrics measures how long a task waited in its queue: this module
  is loaded wherever logging is configured, so every publisher stamps it.

The ids live in context variables: under ASGI each request runs in its own context, and
in a worker each task runs in one thread at a time.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from celery import signals

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_MESSAGE_HEADER = "tutoring_request_id"
PUBLISHED_AT_MESSAGE_HEADER = "tutoring_published_at"
# An id chosen by a client is copied into logs, so only a short, plain token is accepted.
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{8,128}")
# Probes hit these every few seconds; their access lines are debug-level noise.
_QUIET_PATHS = frozenset({"/healthz", "/metrics"})

_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
_task_id: ContextVar[str | None] = ContextVar("task_id", default=None)
_task_name: ContextVar[str | None] = ContextVar("task_name", default=None)

access_logger = logging.getLogger("tutoring.access")


def current_request_id() -> str | None:
    return _request_id.get()


def current_task_id() -> str | None:
    return _task_id.get()


# --- records ------------------------------------------------------------------------------


class ContextFilter(logging.Filter):
    """Adds the current request and task ids to each record (``None`` outside them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _request_id.get()
        record.task_id = _task_id.get()
        record.task_name = _task_name.get()
        return True


# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "request_id", "task_id", "task_name"}
)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, ids, ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("request_id", "task_id", "task_name"):
            value = getattr(record, key, None)
            if value:
                entry[key] = value
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """The laptop format: human-readable, with the ids in brackets when there are any."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(ids)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        ids = [
            f"{key}={value}"
            for key in ("request_id", "task_id")
            if (value := getattr(record, key, None))
        ]
        record.ids = f" [{' '.join(ids)}]" if ids else ""
        return super().format(record)


# --- requests -----------------------------------------------------------------------------


def _request_id_for(request: Any) -> str:
    offered = request.headers.get(REQUEST_ID_HEADER, "")
    return offered if _VALID_REQUEST_ID.fullmatch(offered) else uuid.uuid4().hex


class RequestIdMiddleware:
    """Sets the request id for the logs, echoes it in the response and logs the request.

    Sync and async capable, so under ASGI it adds no thread hop to streaming views. For a
    streamed response the duration is the time to the response headers.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        if self.is_async:
            return self.__acall__(request)
        started = self._begin(request)
        response = self.get_response(request)
        return self._end(request, response, started)

    async def __acall__(self, request: Any) -> Any:
        started = self._begin(request)
        response = await self.get_response(request)
        return self._end(request, response, started)

    def _begin(self, request: Any) -> float:
        request.request_id = _request_id_for(request)
        # No reset afterwards: a streamed body is produced after this returns, and its
        # log lines must still carry the id. Each request sets its own.
        _request_id.set(request.request_id)
        return time.perf_counter()

    def _end(self, request: Any, response: Any, started: float) -> Any:
        response[REQUEST_ID_HEADER] = request.request_id
        duration_ms = round((time.perf_counter() - started) * 1000, 1)
        level = logging.DEBUG if request.path in _QUIET_PATHS else logging.INFO
        access_logger.log(
            level,
            "%s %s %s",
            request.method,
            request.path,
            response.status_code,
            extra={
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "duration_ms": duration_ms,
            },
        )
        return response


# --- Celery -------------------------------------------------------------------------------


@signals.before_task_publish.connect(weak=False, dispatch_uid="tutoring_logging_publish")
def _add_context_headers(headers: dict | None = None, **_: Any) -> None:
    """The request id for the task's logs, and the publish time for its queue-wait metric."""
    if headers is None:
        return
    headers.setdefault(PUBLISHED_AT_MESSAGE_HEADER, time.time())
    request_id = _request_id.get()
    if request_id:
        headers.setdefault(REQUEST_ID_MESSAGE_HEADER, request_id)


# Tokens to restore when a task ends, by task id: a task run eagerly inside a request must
# give the request its own ids back.
_saved_context: dict[str, tuple[Any, Any, Any]] = {}


@signals.task_prerun.connect(weak=False, dispatch_uid="tutoring_logging_prerun")
def _task_started(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    # A task enqueued by a request carries that request's id; tasks it enqueues in turn
    # pass it on through the publish hook above.
    request = getattr(task, "request", None)
    inherited = getattr(request, REQUEST_ID_MESSAGE_HEADER, None) or _request_id.get()
    tokens = (
        _task_id.set(task_id),
        _task_name.set(getattr(task, "name", None)),
        _request_id.set(inherited),
    )
    if task_id:
        _saved_context[task_id] = tokens


@signals.task_postrun.connect(weak=False, dispatch_uid="tutoring_logging_postrun")
def _task_finished(task_id: str | None = None, **_: Any) -> None:
    tokens = _saved_context.pop(task_id, None) if task_id else None
    if tokens is None:
        return
    for variable, token in zip((_task_id, _task_name, _request_id), tokens, strict=True):
        try:
            variable.reset(token)
        except ValueError:  # set in another context (not expected); clear instead
            variable.set(None)
