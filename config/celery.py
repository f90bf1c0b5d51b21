"""The Celery application, configured from Django settings as the Celery docs recommend.

Two queues: ``llm`` for I/O-bound calls to the language model server (run by a worker
with a thread pool and high concurrency, because the server batches concurrent requests)
and ``cpu`` for parsing, embedding and model fitting (prefork, one process per core).
"""

import os
from typing import Any

from celery import Celery
from celery.signals import beat_init, worker_init
from kombu import Queue

from config.embedded import embedded_start

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("tutoring")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = (Queue("llm"), Queue("cpu"))
app.autodiscover_tasks()
# Modules of tasks beside each app's tasks.py: tutoring turns.
app.conf.include = ["tutor.conversation_tasks"]


@worker_init.connect
@beat_init.connect
def _embedded_start(**kwargs) -> None:
    """A worker or beat on a laptop starts the embedded servers it uses (settings start
    nothing; config/embedded.py)."""
    embedded_start()


def enqueue_on_commit(task, *args, countdown: float = 0.0) -> None:
    """Send ``task(*args)`` once the transaction commits (``countdown`` seconds later, for
    a backoff), fire and forget.

    Nobody reads these tasks' results, so the sender does not subscribe to one (Redis's
    result backend would, and while Redis is away it retries that for twenty seconds).
    If the broker cannot be reached the error is logged, not raised: the page still
    answers, and the row the task works on stays queued for the recovery sweep
    (``config/recovery.py``) to send again.
    """
    from django.db import transaction

    options: dict[str, Any] = {"ignore_result": True}
    if countdown:
        options["countdown"] = countdown
    transaction.on_commit(lambda: task.apply_async(args=list(args), **options), robust=True)
