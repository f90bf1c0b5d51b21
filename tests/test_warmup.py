"""Warm processes: the embedding model loads at process start, and /healthz says
"warming" (503) until it has."""

from __future__ import annotations

import asyncio
import socket
import threading

import pytest
from django.urls import reverse

from config import warmup


@pytest.fixture
def cold(monkeypatch):
    """This process's warm-up state starts cold and is restored after the test."""
    monkeypatch.setattr(warmup, "_state", warmup.COLD)
    monkeypatch.setattr(warmup, "_seconds", None)


@pytest.mark.django_db
def test_healthz_says_warming_while_this_web_process_loads_the_model(client, cold, monkeypatch):
    monkeypatch.setattr(warmup, "_state", warmup.WARMING)
    monkeypatch.setattr("config.health.CHECKS", {"database": lambda: {"ok": True}})
    response = client.get(reverse("healthz"))
    assert response.status_code == 503
    assert response.json()["status"] == "warming"
    assert response.json()["warming"] == ["web"]

    monkeypatch.setattr(warmup, "_state", warmup.READY)
    response = client.get(reverse("healthz"))
    assert (response.status_code, response.json()["status"]) == (200, "ok")
    assert response.json()["warming"] == []


@pytest.mark.django_db
def test_a_worker_warming_up_is_reported_as_warming_not_as_down(client, settings, monkeypatch):
    import redis

    def no_worker():
        return {"ok": False, "error": "no Celery worker answered within 1 second"}

    monkeypatch.setattr(
        "config.health.CHECKS", {"database": lambda: {"ok": True}, "worker": no_worker}
    )
    warmup._mark_worker("llm@test-host", warming=True)
    try:
        body = client.get(reverse("healthz")).json()
        assert body["status"] == "warming"
        assert body["warming"] == ["worker llm@test-host"]
    finally:
        warmup._mark_worker("llm@test-host", warming=False)
    assert not redis.Redis.from_url(settings.REDIS_URL).keys("warmup:worker:*")
    response = client.get(reverse("healthz"))
    assert (response.status_code, response.json()["status"]) == (503, "unavailable")


def test_warm_up_loads_the_embedding_model_once(cold):
    from ai import embedding

    warmup.warm_up()
    assert warmup.state() == warmup.READY
    assert embedding._model is not None
    assert embedding._traced is not None  # the traced graph is ready before the first query
    model = embedding._model
    warmup.warm_up()
    assert embedding._model is model


def test_warm_up_learns_what_the_llm_server_can_do_before_the_first_reply(cold, llm_server):
    from ai import llm_capabilities

    assert llm_capabilities._cache == {}
    warmup.warm_up()
    assert warmup.state() == warmup.READY
    caps = llm_capabilities._cache[(llm_server.base_url, llm_server.model)]
    assert caps.answered  # probed now: the first reply finds it cached


def test_warm_up_is_ready_though_the_llm_server_is_down(cold, settings):
    from ai import llm_capabilities

    llm_capabilities.capabilities_clear()
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        settings.LLM_BASE_URL = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    try:
        warmup.warm_up()
        assert warmup.state() == warmup.READY
        caps = next(iter(llm_capabilities._cache.values()))
        assert not caps.answered  # asked again on first use
    finally:
        llm_capabilities.capabilities_clear()


def test_the_asgi_app_starts_warming_at_lifespan_startup(cold, settings, monkeypatch):
    from config.asgi import application

    started = []
    monkeypatch.setattr(warmup, "warm_up", lambda: started.append("warm"))
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent = []

    async def receive():
        return next(messages)

    async def send(message):
        sent.append(message["type"])

    asyncio.run(application({"type": "lifespan"}, receive, send))
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    for thread in threading.enumerate():
        if thread.name == "warm-up":
            thread.join(timeout=10)
    assert started == ["warm"]


def test_no_warming_when_turned_off(cold, settings):
    settings.WARM_ON_START = False
    assert warmup.warm_up_in_background() is None
    assert warmup.state() == warmup.COLD
