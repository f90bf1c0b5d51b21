"""``/healthz``: is every part of the product up? JSON, 503 when a required part is down.

``status`` is ``ok`` (200), ``unavailable`` (503: a part is down) or ``warming`` (503: up,
but this web process or a worker is still loading the embedding model at start,
``config/warmup.py``; ``warming`` names which). 503 while warming keeps load balancers and
readiness probes from sending students to a process whose first answers would be slow;
it lasts seconds after a start.
"""

from __future__ import annotations

import contextlib

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


def _llm() -> dict:
    if not settings.LLM_BASE_URL:
        return {"ok": True, "mode": "offline"}
    return {"ok": True, "mode": "online", "model": settings.LLM_MODEL}


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
