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
