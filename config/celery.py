"""The Celery application, configured from Django settings as the Celery docs recommend.

Two queues: ``llm`` for I/O-bound calls to the language model server (run by a worker
with a thread pool and high concurrency, because the server batches concurrent requests)
and ``cpu`` for parsing, embedding and model fitting (prefork, one process per core).
"""

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("tutoring")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = (Queue("llm"), Queue("cpu"))
app.autodiscover_tasks()
# Modules of tasks beside each app's tasks.py: tutoring turns, privacy retention.
app.conf.include = ["tutor.conversation_tasks", "learners.privacy_tasks"]
