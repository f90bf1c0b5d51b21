"""Structured logs carry the request and task that wrote them."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from django.urls import reverse
from prometheus_client.parser import text_string_to_metric_families

from config import logging as app_logging
from config.celery import app as celery_app

ROOT = Path(__file__).resolve().parents[2]


@celery_app.task(name="tests.deploy.context_probe")
def context_probe() -> dict:
    logging.getLogger("tests.deploy").info("inside the task")
    return {
        "task_id": app_logging.current_task_id(),
        "request_id": app_logging.current_request_id(),
    }


@pytest.fixture
def json_lines():
    """Records of the access logger as the production handler writes them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(app_logging.ContextFilter())
    handler.setFormatter(app_logging.JsonFormatter())
    logger = logging.getLogger("tutoring.access")
    logger.addHandler(handler)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        logger.removeHandler(handler)


def test_the_json_formatter_writes_one_object_with_extras_and_the_exception():
    record = logging.LogRecord("tutor.x", logging.ERROR, __file__, 1, "failed %s", ("x",), None)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record.exc_info = sys.exc_info()
    record.course_id = 7
    app_logging.ContextFilter().filter(record)
    line = app_logging.JsonFormatter().format(record)
    assert "\n" not in line.strip() or line.count("\n") == line.count("\\n")
    entry = json.loads(line)
    assert entry["level"] == "ERROR"
    assert entry["logger"] == "tutor.x"
    assert entry["message"] == "failed x"
    assert entry["course_id"] == 7
    assert "RuntimeError: boom" in entry["exception"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", entry["time"])


@pytest.mark.django_db
def test_a_request_gets_an_id_in_its_response_and_its_log_line(client, json_lines):
    response = client.get(reverse("login"))
    request_id = response["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    (line,) = [entry for entry in json_lines() if entry.get("path") == "/login/"]
    assert line["request_id"] == request_id
    assert (line["method"], line["status"]) == ("GET", 200)
    assert line["duration_ms"] >= 0


@pytest.mark.django_db
def test_the_proxys_request_id_is_kept_and_a_malformed_one_replaced(client, json_lines):
    kept = client.get(reverse("login"), HTTP_X_REQUEST_ID="3f2a9c1e-proxy-0001")
    assert kept["X-Request-ID"] == "3f2a9c1e-proxy-0001"
    forged = client.get(reverse("login"), HTTP_X_REQUEST_ID='x" \n{"level": "forged"}')
    assert re.fullmatch(r"[0-9a-f]{32}", forged["X-Request-ID"])
    ids = [entry["request_id"] for entry in json_lines() if entry.get("path") == "/login/"]
    assert ids == ["3f2a9c1e-proxy-0001", forged["X-Request-ID"]]


def test_a_task_logs_with_its_own_id_and_gives_the_caller_its_ids_back():
    token = app_logging._request_id.set("outer-request-0001")
    try:
        result = context_probe.apply()
        assert result.get() == {"task_id": result.id, "request_id": "outer-request-0001"}
        assert app_logging.current_task_id() is None
        assert app_logging.current_request_id() == "outer-request-0001"
    finally:
        app_logging._request_id.reset(token)


@pytest.mark.worker
def test_a_task_enqueued_during_a_request_carries_the_request_id_to_the_worker(celery_worker):
    token = app_logging._request_id.set("web-request-0002")
    try:
        result = context_probe.apply_async(queue="cpu")
    finally:
        app_logging._request_id.reset(token)
    assert result.get(timeout=30) == {"task_id": result.id, "request_id": "web-request-0002"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(predicate, timeout: float = 120.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


@pytest.mark.worker
@pytest.mark.parametrize("pool", ["threads", "prefork"])
def test_a_production_worker_logs_json_and_serves_its_metrics(tmp_path, pool):
    """A real `celery worker` with LOG_FORMAT=json, as the worker containers run it; with
    prefork the task runs in a child process and the parent serves the metrics."""
    port = _free_port()
    queue = f"deploy-json-{port}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings_test",
        "LOG_FORMAT": "json",
        "METRICS_WORKER_PORT": str(port),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
    }
    # A queue of its own, so it takes no task another test or process is owed.
    command = [sys.executable, "-m", "celery", "-A", "config", "worker", "-P", pool]
    command += ["-c", "2", "-Q", queue, "-n", f"json{port}@%h", "-l", "INFO"]
    command += ["-I", "celery.contrib.testing.tasks"]
    worker = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: list[str] = []

    def read() -> None:
        for line in worker.stdout:
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()

    def entries() -> list[dict]:
        parsed = []
        for line in list(lines):
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    parsed.append(json.loads(line))
        return parsed

    try:
        ready = _wait_for(lambda: any(e["message"].endswith(" ready.") for e in entries()))
        assert ready, "".join(lines)
        result = celery_app.send_task("celery.ping", queue=queue)
        assert result.get(timeout=90) == "pong"
        logged = _wait_for(lambda: any(e.get("task_id") == result.id for e in entries()))
        assert logged, "".join(lines)
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
        reader.join(timeout=10)
    succeeded = [e for e in entries() if e.get("task_id") == result.id]
    assert succeeded[-1]["task_name"] == "celery.ping"
    assert "succeeded" in succeeded[-1]["message"]
    samples = {
        (sample.name, sample.labels.get("task"), sample.labels.get("state")): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }
    assert samples[("tutoring_celery_task_duration_seconds_count", "celery.ping", "SUCCESS")] == 1
    assert samples[("tutoring_celery_task_queue_wait_seconds_count", "celery.ping", None)] == 1
