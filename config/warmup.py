"""Warm processes: what is slow to load is loaded when a process starts, not on first use.

The embedding model (sentence-transformers and torch: seconds to import and load, and a
slow first pass) is needed by every search and every tutor reply; so are the LLM SDK's
client and what the model server can do (``ai.llm.llm_warm``: its context window and
tokenizer, probed once). Without this the first student after a deploy or a worker
restart waited for them.

- Web (uvicorn): the ASGI application (``config/asgi.py``) starts warming in a background
  thread at lifespan startup, so the server answers at once; ``/healthz`` says
  ``"warming"`` (HTTP 503: not ready for traffic yet) until the model is loaded.
- Celery workers: a thread or solo pool warms in ``worker_init``, before the worker
  consumes anything, and a prefork pool in each child's ``worker_process_init`` (before
  the child takes a task). Meanwhile the worker is listed in Redis as warming, which
  ``/healthz`` reports instead of "no worker answered".

``WARM_ON_START=0`` turns it off (the model then loads on first use, as before).
"""

from __future__ import annotations

import logging
import os
import threading
import time

from celery.signals import worker_init, worker_process_init, worker_shutdown
from django.conf import settings

from ai import embedding, llm

logger = logging.getLogger(__name__)

COLD, WARMING, READY = "cold", "warming", "ready"
# A worker that died while warming drops off the list after this long.
WARMING_KEY_SECONDS = 300
_WARMING_PREFIX = "warmup:worker:"

_lock = threading.Lock()
_state = COLD
_seconds: float | None = None


def state() -> str:
    """This process's warm-up: ``cold`` (never asked to warm: it loads on first use),
    ``warming`` or ``ready``."""
    return _state


def warm_seconds() -> float | None:
    """How long this process's warm-up took, once it is ready."""
    return _seconds


def warm_up() -> None:
    """Load the embedding model and run it once (a first pass is slower than the rest).
    Idempotent; blocks until done. A failure is logged and leaves loading to first use."""
    global _state, _seconds
    with _lock:
        if _state == READY:
            return
        _state = WARMING
        started = time.perf_counter()
        try:
            embedding.embed_texts(["warm up"])
        except Exception:
            logger.exception("Warming up failed; the model loads on first use instead.")
            _state = COLD
            return
        try:
            llm.llm_warm()
        except Exception as error:  # noqa: BLE001 - the first reply asks the server again
            logger.warning("Could not learn the LLM server's capabilities yet: %r", error)
        _seconds = time.perf_counter() - started
        _state = READY
    logger.info("Warm: the embedding model is loaded (%.1f s).", _seconds)


def warm_up_in_background() -> threading.Thread | None:
    """Start ``warm_up`` in a daemon thread (the web server answers meanwhile)."""
    global _state
    if not settings.WARM_ON_START or _state != COLD:
        return None
    _state = WARMING  # from now on, so /healthz never sees "cold" before the thread runs
    thread = threading.Thread(target=warm_up, name="warm-up", daemon=True)
    thread.start()
    return thread


# --- workers ------------------------------------------------------------------------------


def _redis():
    import redis

    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)


def _mark_worker(hostname: str, *, warming: bool) -> None:
    """List (or unlist) the worker as warming, for /healthz; Redis being away is no reason
    not to warm."""
    try:
        client = _redis()
        try:
            if warming:
                client.set(_WARMING_PREFIX + hostname, "1", ex=WARMING_KEY_SECONDS)
            else:
                client.delete(_WARMING_PREFIX + hostname)
        finally:
            client.close()
    except Exception as error:  # noqa: BLE001 - see the docstring
        logger.warning("Could not note worker %s as warming: %r", hostname, error)


def workers_warming() -> list[str]:
    """Names of the workers warming up now (from Redis)."""
    client = _redis()
    try:
        keys = client.keys(_WARMING_PREFIX + "*")
    finally:
        client.close()
    return sorted(key.decode()[len(_WARMING_PREFIX) :] for key in keys)


def _is_prefork(worker) -> bool:
    from celery import concurrency

    pool = concurrency.get_implementation(worker.pool_cls)
    return pool.__module__.endswith(".prefork")


def _warm_worker(hostname: str) -> None:
    _mark_worker(hostname, warming=True)
    try:
        warm_up()
    finally:
        _mark_worker(hostname, warming=False)


@worker_init.connect
def _warm_thread_worker(sender=None, **_kwargs) -> None:
    """A thread or solo pool runs its tasks in this process: warm it before it consumes."""
    if sender is None or not settings.WARM_ON_START or _is_prefork(sender):
        return
    _warm_worker(sender.hostname)


@worker_process_init.connect
def _warm_prefork_child(sender=None, **_kwargs) -> None:
    """Each prefork child warms before it takes a task (CELERY_WORKER_PROC_ALIVE_TIMEOUT
    gives it the time)."""
    if not settings.WARM_ON_START:
        return
    _warm_worker(f"{sender or 'worker'}#{os.getpid()}")


@worker_shutdown.connect
def _unlist(sender=None, **_kwargs) -> None:
    if sender is not None and getattr(sender, "hostname", None):
        _mark_worker(sender.hostname, warming=False)
