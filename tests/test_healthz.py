from __future__ import annotations

import pytest
from django.urls import reverse


@pytest.mark.worker
def test_healthz_reports_every_part_healthy_with_a_worker_running(client, celery_worker):
    response = client.get(reverse("healthz"))
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert set(body["parts"]) == {"database", "pgvector", "redis", "worker", "llm"}
    assert body["parts"]["llm"]["mode"] == "offline"
    assert body["parts"]["pgvector"]["version"]


@pytest.mark.django_db
def test_healthz_is_503_and_names_redis_when_redis_is_down(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = client.get(reverse("healthz"))
    assert response.status_code == 503
    assert response.json()["parts"]["redis"]["ok"] is False
    assert response.json()["parts"]["database"]["ok"] is True


@pytest.mark.worker
def test_a_task_round_trips_through_the_real_broker_and_worker(celery_worker):
    from celery.contrib.testing.tasks import ping

    assert ping.delay().get(timeout=10) == "pong"


@pytest.mark.django_db
def test_healthz_is_503_naming_the_llm_when_its_server_is_down(client, settings):
    from config import health
    from tests.ai.test_llm_client import free_port

    settings.LLM_BASE_URL = f"http://127.0.0.1:{free_port()}/v1"
    health._llm_checked.clear()
    response = client.get(reverse("healthz"))
    assert response.status_code == 503
    llm = response.json()["parts"]["llm"]
    assert llm["ok"] is False
    assert "LLM server" in llm["error"] and settings.LLM_BASE_URL in llm["error"]


@pytest.mark.django_db
def test_healthz_asks_a_running_llm_server_at_most_every_few_seconds(client, llm_server):
    from config import health

    health._llm_checked.clear()
    for _ in range(3):
        assert client.get(reverse("healthz")).json()["parts"]["llm"]["ok"] is True
    assert llm_server.stats.requests == 1  # one GET /v1/models for three checks
