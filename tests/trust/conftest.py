"""Fixtures of the fault tests: the broker to themselves, and workers they may kill."""

from __future__ import annotations

import pytest
import redis

from tests.grading.workflow_factories import assignment  # noqa: F401
from tests.trust.workers import LEASE_SECONDS, QUEUES, WorkerProcess


@pytest.fixture
def broker(settings):
    """The test broker to one test alone: its queues and kombu's bookkeeping of
    unacknowledged messages emptied, and any other worker (the suite's in-process one)
    kept off the llm and cpu queues meanwhile. Yields a client of the broker's Redis."""
    from config.celery import app

    others: set[str] = set()
    for queue in QUEUES:
        for reply in app.control.cancel_consumer(queue, reply=True, timeout=0.5) or []:
            others.update(reply)
    with app.connection_for_write() as conn:
        for queue in QUEUES:
            conn.default_channel.queue_purge(queue)
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    client.delete("unacked", "unacked_index")
    yield client
    for name in others:
        for queue in QUEUES:
            app.control.add_consumer(queue, destination=[name], reply=True, timeout=1)
    client.close()


@pytest.fixture
def workers(broker, settings, tmp_path):
    """Start ``celery worker`` processes: ``workers("llm", name=..., **env)`` (a thread
    pool of 4) or ``workers("cpu", ...)`` (prefork, one process), with a lease of
    LEASE_SECONDS; each is killed at the end of the test if still alive."""
    settings.WORK_LEASE_SECONDS = LEASE_SECONDS
    started: list[WorkerProcess] = []

    def start(queue: str, *, name: str, **env: str) -> WorkerProcess:
        pool, concurrency = ("prefork", 1) if queue == "cpu" else ("threads", 4)
        worker = WorkerProcess(
            queue=queue,
            pool=pool,
            concurrency=concurrency,
            name=name,
            log_path=tmp_path / f"{name}.log",
            env=env,
        )
        started.append(worker)
        return worker.start()

    yield start
    for worker in started:
        worker.kill()
