"""Real Celery workers as processes of their own, for tests that kill one (SIGKILL).

The in-process worker of ``tests/conftest.py`` runs in the test's own process, which a
test cannot kill; these run ``celery worker`` from the command line, in a session of
their own so one signal takes the worker and its pool processes together, on the same
broker and test database as the test.
"""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
QUEUES = ("llm", "cpu")
# Short, so a test need not wait long for a dead worker's lease to lapse.
LEASE_SECONDS = 2.0


def wait_for(predicate, *, timeout: float, what: str):
    """The first true value of ``predicate()``, polled until ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class WorkerProcess:
    """``celery worker`` on one queue; ``start()`` returns once it is consuming."""

    def __init__(
        self,
        *,
        queue: str,
        pool: str,
        concurrency: int,
        name: str,
        log_path: Path,
        env: dict[str, str] | None = None,
    ) -> None:
        self.queue, self.pool, self.concurrency, self.name = queue, pool, concurrency, name
        self.log_path = log_path
        self.extra_env = env or {}
        self.process: subprocess.Popen | None = None

    def start(self, *, timeout: float = 60) -> WorkerProcess:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.trust.worker_settings",
            "PYTHONPATH": str(ROOT),
            "TEST_DATABASE_NAME": connection.settings_dict["NAME"],
            "TEST_LLM_BASE_URL": settings.LLM_BASE_URL,
            "TEST_LLM_MODEL": settings.LLM_MODEL,
            "MEDIA_ROOT": str(settings.MEDIA_ROOT),
            "WORK_LEASE_SECONDS": str(settings.WORK_LEASE_SECONDS),
            "WORK_REQUEUE_SECONDS": str(settings.WORK_REQUEUE_SECONDS),
            **self.extra_env,
        }
        command = [
            sys.executable, "-m", "celery", "-A", "config", "worker",
            "-Q", self.queue, "-P", self.pool, "-c", str(self.concurrency),
            "-n", f"{self.name}@%h", "--without-gossip", "--without-mingle", "-l", "info",
        ]  # fmt: skip
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 - our own command line
                command,
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while " ready." not in self.log():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"the worker {self.name} did not start:\n{self.log()}")
            time.sleep(0.1)
        return self

    def log(self) -> str:
        """What this run of the worker has logged so far."""
        with self.log_path.open("rb") as log:
            log.seek(self._log_offset)
            return log.read().decode(errors="replace")

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes: no shutdown, no acknowledgements."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        """A warm shutdown (SIGTERM), then SIGKILL if it does not end in time."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()


def unacked_tasks(client, task_name: str) -> list[list]:
    """The arguments of each delivered but unacknowledged task named ``task_name``: the
    messages Redis keeps for redelivery (kombu's ``unacked`` hash)."""
    found = []
    for raw in client.hvals("unacked"):
        payload, _exchange, _routing_key = json.loads(raw)
        headers = payload.get("headers") or {}
        if headers.get("task") == task_name:
            found.append(list(ast.literal_eval(headers.get("argsrepr") or "()")))
    return found
