"""``/healthz``: is every part of the product up? JSON, 503 when a required part is down.

``status`` is ``ok`` (200), ``unavailable`` (503: a part is down) or ``warming`` (503: up,
but this web process or a worker is still loading the embedding model at start,
``config/warmup.py``; ``warming`` names which). 503 while warming keeps load balancers and
readiness probes from sending students to a process whose first answers would be slow;
it lasts seconds after a start.
"""

from __future__ import annotations

import contextlib
import threading
import time
import urllib.error
import urllib.request

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from config import warmup
from config.celery import app as celery_app


def _database() -> dict:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return {"ok": True}


def _pgvector() -> dict:
    with connection.cursor() as cursor:
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        row = cursor.fetchone()
    if row is None:
        return {"ok": False, "error": "the vector extension is not installed; run migrate"}
    return {"ok": True, "version": row[0]}


def _redis() -> dict:
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
    try:
        client.ping()
    finally:
        client.close()
    return {"ok": True}


def _worker() -> dict:
    with celery_app.connection_for_write() as conn:
        # Fail fast when the broker is down instead of retrying for minutes.
        conn.ensure_connection(max_retries=1, timeout=1)
        replies = celery_app.control.ping(timeout=1.0, connection=conn)
    if not replies:
        return {"ok": False, "error": "no Celery worker answered within 1 second"}
    return {"ok": True, "workers": sorted(name for reply in replies for name in reply)}


# The language model server is asked at most this often (load balancers poll /healthz
# every few seconds; a slow CPU server should not spend its time answering them).
LLM_CHECK_CACHE_SECONDS = 5.0
LLM_CHECK_TIMEOUT_SECONDS = 2.0
_llm_checked: dict[str, tuple[float, dict]] = {}
_llm_lock = threading.Lock()


def _llm() -> dict:
    """Offline mode is healthy; when ``LLM_BASE_URL`` is set, its server must answer a
    cheap ``GET /models`` within LLM_CHECK_TIMEOUT_SECONDS (cached a few seconds)."""
    base_url = settings.LLM_BASE_URL
    if not base_url:
        return {"ok": True, "mode": "offline"}
    now = time.monotonic()
    with _llm_lock:
        cached = _llm_checked.get(base_url)
    if cached is not None and now - cached[0] < LLM_CHECK_CACHE_SECONDS:
        return cached[1]
    result = _llm_models_check(base_url)
    with _llm_lock:
        _llm_checked[base_url] = (now, result)
    return result


def _llm_models_check(base_url: str) -> dict:
    part = {"mode": "online", "model": settings.LLM_MODEL}
    headers = {"Authorization": f"Bearer {settings.LLM_API_KEY}"} if settings.LLM_API_KEY else {}
    url = f"{base_url.rstrip('/')}/models"
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - the configured server
    try:
        with urllib.request.urlopen(request, timeout=LLM_CHECK_TIMEOUT_SECONDS) as response:  # noqa: S310
            response.read(65536)
    except urllib.error.HTTPError as error:
        return {**part, "ok": False, "error": f"the LLM server at {url} answered {error.code}"}
    except Exception as error:  # noqa: BLE001 - unreachable, refused, timed out
        reason = getattr(error, "reason", error)
        return {**part, "ok": False, "error": f"the LLM server at {url} is down: {reason}"[:300]}
    return {**part, "ok": True}


CHECKS = {
    "database": _database,
    "pgvector": _pgvector,
    "redis": _redis,
    "worker": _worker,
    "llm": _llm,
}


def _warming() -> list[str]:
    """What is still warming up: this web process, and workers listed in Redis."""
    names = ["web"] if warmup.state() == warmup.WARMING else []
    # Redis being down is the redis part's to report.
    with contextlib.suppress(Exception):
        names += [f"worker {name}" for name in warmup.workers_warming()]
    return names


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    parts: dict[str, dict] = {}
    for name, check in CHECKS.items():
        try:
            parts[name] = check()
        except Exception as error:  # noqa: BLE001 - any failure means "down", reported as such
            parts[name] = {"ok": False, "error": f"{type(error).__name__}: {error}"[:300]}
    warming = _warming()
    down = [name for name, part in parts.items() if not part["ok"]]
    if not down and not warming:
        status = "ok"
    elif warming and (
        # A worker warming up answers no ping until it is warm.
        not down or (down == ["worker"] and any(name.startswith("worker ") for name in warming))
    ):
        status = "warming"
    else:
        status = "unavailable"
    return JsonResponse(
        {"status": status, "parts": parts, "warming": warming},
        status=200 if status == "ok" else 503,
    )
