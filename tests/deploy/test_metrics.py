"""/metrics and the helpers other modules report through."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import redis
from django.urls import reverse
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from config import metrics
from config.celery import app as celery_app

ROOT = Path(__file__).resolve().parents[2]


@celery_app.task(name="tests.deploy.metrics_probe")
def metrics_probe(value: int) -> int:
    if value < 0:
        raise ValueError("negative")
    return value * 2


@pytest.fixture(autouse=True)
def _metrics_open(settings):
    """These tests read /metrics as Prometheus would; who may read it is tested in
    tests/security/test_metrics_access.py."""
    settings.METRICS_PUBLIC = True


def _samples(body: str) -> dict[tuple[str, frozenset], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def _key(name: str, **labels: str) -> tuple[str, frozenset]:
    return name, frozenset(labels.items())


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.mark.django_db
def test_a_request_increments_the_request_counter(client):
    labels = {"method": "GET", "route": "login/", "status": "200"}
    before = _value("tutoring_http_requests_total", **labels)
    assert client.get(reverse("login")).status_code == 200
    assert _value("tutoring_http_requests_total", **labels) == before + 1

    body = client.get(reverse("metrics")).content.decode()
    assert _samples(body)[_key("tutoring_http_requests_total", **labels)] == before + 1
    duration = _key("tutoring_http_request_duration_seconds_count", method="GET", route="login/")
    assert _samples(body)[duration] >= 1


@pytest.mark.django_db
def test_paths_are_counted_by_route_not_by_url(client):
    before = _value("tutoring_http_requests_total", method="GET", route="unmatched", status="404")
    client.get(f"/no-such-page-{uuid.uuid4().hex}/")
    client.get(f"/no-such-page-{uuid.uuid4().hex}/")
    after = _value("tutoring_http_requests_total", method="GET", route="unmatched", status="404")
    assert after == before + 2


def _delta(before: dict[tuple[str, frozenset], float], name: str, **labels: str) -> float:
    return _value(name, **labels) - before.get(_key(name, **labels), 0.0)


def _snapshot() -> dict[tuple[str, frozenset], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in REGISTRY.collect()
        for sample in family.samples
    }


@pytest.mark.django_db
def test_a_streamed_call_of_the_llm_client_shows_its_tokens_and_time_to_first_token(
    client, settings, llm_server, student, course
):
    """What production reports: the client's call, through the ledger, into /metrics."""
    from ai.ledger import LLMCallFor, Purpose
    from ai.llm import chat_stream
    from ai.models import LLMCall

    settings.LLM_JOULES_PER_TOKEN = 0.5
    llm_server.script(reply="Light drives the reactions that make sugar.", ttft=0.3)
    before = _snapshot()
    labels = {"model": llm_server.model, "purpose": "tutor"}

    stream = chat_stream(
        messages=[{"role": "user", "content": "What does light do?"}],
        prompt_version="tutor-v1",
        call=LLMCallFor(purpose=Purpose.TUTOR, user_id=student.pk, course_id=course.pk),
    )
    assert "".join(stream) == "Light drives the reactions that make sugar."

    call = LLMCall.objects.get(user=student, course=course)
    assert call.prompt_tokens == stream.usage.prompt_tokens > 0
    assert call.completion_tokens == stream.usage.completion_tokens > 0
    samples = _samples(client.get(reverse("metrics")).content.decode())

    def exposed(name: str, **extra: str) -> float:
        return samples[(name, frozenset({**labels, **extra}.items()))]

    for kind, tokens in (("prompt", call.prompt_tokens), ("completion", call.completion_tokens)):
        assert _delta(before, "tutoring_llm_tokens_total", **labels, kind=kind) == tokens
        assert exposed("tutoring_llm_tokens_total", kind=kind) >= tokens
    assert _delta(before, "tutoring_llm_requests_total", **labels, outcome="finished") == 1
    assert _delta(before, "tutoring_llm_time_to_first_token_seconds_count", **labels) == 1
    ttft = _delta(before, "tutoring_llm_time_to_first_token_seconds_sum", **labels)
    assert ttft == pytest.approx(call.ttft_seconds) and ttft >= 0.3
    duration = _delta(
        before, "tutoring_llm_request_duration_seconds_sum", **labels, outcome="finished"
    )
    assert duration == pytest.approx(call.duration_seconds)
    # Energy counts every token, prompt and completion, as the usage page does.
    energy = _delta(before, "tutoring_llm_energy_joules_estimated_total", **labels)
    assert energy == pytest.approx(call.tokens * 0.5)
    assert exposed("tutoring_llm_energy_joules_estimated_total") >= energy


@pytest.mark.django_db
def test_a_failed_json_call_is_counted_by_outcome_without_made_up_tokens(
    settings, llm_server, student, course
):
    from ai.ledger import LLMCallFor, Purpose
    from ai.llm import LLMUnavailable, chat_json
    from ai.models import LLMCall

    settings.LLM_MAX_RETRIES = 1
    settings.LLM_RETRY_BACKOFF_SECONDS = 0.01
    llm_server.fail_next(2, status=503)
    before = _snapshot()
    labels = {"model": settings.LLM_MODEL, "purpose": "grading"}

    with pytest.raises(LLMUnavailable):
        chat_json(
            messages=[{"role": "user", "content": "Grade this."}],
            schema={"type": "object"},
            schema_name="grade",
            prompt_version="g1",
            call=LLMCallFor(purpose=Purpose.GRADING, user_id=student.pk, course_id=course.pk),
        )

    call = LLMCall.objects.get(user=student, course=course)
    assert (call.outcome, call.error_kind, call.tokens_source) == (
        "transient_error",
        "LLMUnavailable",
        "none",
    )
    assert _delta(before, "tutoring_llm_requests_total", **labels, outcome="transient_error") == 1
    # Nothing reached the model: nothing recorded rather than zeros.
    assert _delta(before, "tutoring_llm_tokens_total", **labels, kind="prompt") == 0
    assert _delta(before, "tutoring_llm_tokens_total", **labels, kind="completion") == 0


@pytest.mark.django_db
def test_grading_throughput_is_counted_by_source(
    client,
    llm_server,
    eager_tasks,
    student,
    assignment,
    submit,
    django_capture_on_commit_callbacks,
):
    """A real grade proposal (the LLM's, run by its task) is counted as production does."""
    from grading.models import Proposal
    from tests.grading.workflow_factories import grade_reply

    llm_server.script(json_reply=grade_reply(assignment))
    proposed = {"source": "llm", "outcome": "proposed"}
    before = _snapshot()

    with django_capture_on_commit_callbacks(execute=True):
        submission = submit(student)

    proposal = Proposal.objects.get(submission=submission, source="llm")
    assert proposal.status == Proposal.Status.DONE
    assert _delta(before, "tutoring_gradings_total", **proposed) == 1
    assert _delta(before, "tutoring_grading_duration_seconds_count", source="llm") == 1
    seconds = _delta(before, "tutoring_grading_duration_seconds_sum", source="llm")
    assert 0 < seconds <= (proposal.finished_at - proposal.claimed_at).total_seconds() + 1
    samples = _samples(client.get(reverse("metrics")).content.decode())
    assert samples[("tutoring_gradings_total", frozenset(proposed.items()))] >= 1
    grading_calls = {"model": llm_server.model, "purpose": "grading", "outcome": "finished"}
    assert _delta(before, "tutoring_llm_requests_total", **grading_calls) == 1


def test_a_bearer_token_guards_metrics_when_one_is_set(client, settings):
    settings.METRICS_TOKEN = "s3cret-token"
    settings.METRICS_PUBLIC = False
    assert client.get(reverse("metrics")).status_code == 401
    wrong = client.get(reverse("metrics"), HTTP_AUTHORIZATION="Bearer nope")
    assert wrong.status_code == 401
    right = client.get(reverse("metrics"), HTTP_AUTHORIZATION="Bearer s3cret-token")
    assert right.status_code == 200
    assert right["Content-Type"].startswith("text/plain")


def test_queue_length_counts_waiting_messages_at_every_priority(settings):
    queue = f"deploy-test-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    try:
        client.rpush(queue, "a", "b", "c")
        client.rpush(queue + "\x06\x163", "d")
        collector = metrics.QueueLengthCollector(settings.CELERY_BROKER_URL, [queue, "empty-q"])
        (family,) = list(collector.collect())
        assert {s.labels["queue"]: s.value for s in family.samples} == {queue: 4, "empty-q": 0}
    finally:
        client.delete(queue, queue + "\x06\x163")
        client.close()


def test_queue_length_is_absent_rather_than_wrong_when_the_broker_is_down():
    collector = metrics.QueueLengthCollector("redis://127.0.0.1:1/0", ["llm"])
    assert list(collector.collect()) == []


def test_the_web_metrics_include_the_celery_queues(client):
    body = client.get(reverse("metrics")).content.decode()
    queues = {
        sample.labels["queue"]
        for family in text_string_to_metric_families(body)
        if family.name == "tutoring_celery_queue_length"
        for sample in family.samples
    }
    assert queues == {"llm", "cpu"}


def test_task_run_time_is_recorded_by_task_and_state():
    ok = {"task": "tests.deploy.metrics_probe", "state": "SUCCESS"}
    failed = {"task": "tests.deploy.metrics_probe", "state": "FAILURE"}
    before_ok = _value("tutoring_celery_task_duration_seconds_count", **ok)
    before_failed = _value("tutoring_celery_task_duration_seconds_count", **failed)
    assert metrics_probe.apply(args=(2,)).get() == 4
    metrics_probe.apply(args=(-1,))
    assert _value("tutoring_celery_task_duration_seconds_count", **ok) == before_ok + 1
    assert _value("tutoring_celery_task_duration_seconds_count", **failed) == before_failed + 1


@pytest.mark.worker
def test_a_real_worker_records_how_long_a_task_waited_in_its_queue(celery_worker):
    labels = {"queue": "cpu", "task": "tests.deploy.metrics_probe"}
    before = _value("tutoring_celery_task_queue_wait_seconds_count", **labels)
    assert metrics_probe.apply_async(args=(5,), queue="cpu").get(timeout=30) == 10
    assert _value("tutoring_celery_task_queue_wait_seconds_count", **labels) == before + 1


_OBSERVE_IN_A_PROCESS = """
import django
from django.conf import settings
settings.configure(LLM_JOULES_PER_TOKEN=0.0)
from config.metrics import llm_call_observed
llm_call_observed(model="m", purpose="tutor", outcome="finished", prompt_tokens=100,
                  completion_tokens=7, total_s=1.0, time_to_first_token_s=0.1)
"""

_EXPOSE = """
from django.conf import settings
settings.configure()
from prometheus_client import generate_latest
from config.metrics import _process_registry
print(generate_latest(_process_registry()).decode())
"""


def test_metrics_of_several_processes_are_added_up(tmp_path):
    """What a web container with several uvicorn workers (or prefork children) reports."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    for _ in range(2):
        subprocess.run([sys.executable, "-c", _OBSERVE_IN_A_PROCESS], cwd=ROOT, env=env, check=True)
    exposed = subprocess.run(
        [sys.executable, "-c", _EXPOSE],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    samples = _samples(exposed)
    labels = {"model": "m", "purpose": "tutor"}
    assert samples[_key("tutoring_llm_tokens_total", **labels, kind="prompt")] == 200
    assert samples[_key("tutoring_llm_time_to_first_token_seconds_count", **labels)] == 2
