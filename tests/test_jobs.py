"""The job machine (config/jobs.py) on its own, against the real database: a job model of
no app (its table made for these tests), claimed by real threads on their own
connections, leases renewed by the real background thread."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, connections, models
from django.utils import timezone

from config import jobs
from config.jobs import Claim, Job, Recovered
from config.recovery import work_recover

pytestmark = pytest.mark.django_db(transaction=True)


class Chore(Job):
    """A job of no app, so that the machine is tested alone."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    FINISHED_FIELD = "finished_at"
    LOST_ERROR = "WorkerLost: the chore killed its workers"

    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        app_label = "tests_jobs"


@pytest.fixture
def chores(transactional_db):
    with connection.schema_editor() as editor:
        editor.create_model(Chore)
    yield Chore.objects
    with connection.schema_editor() as editor:
        editor.delete_model(Chore)


def a_moment_ago():
    return timezone.now() - timedelta(seconds=1)


def test_of_many_workers_claiming_one_job_at_once_exactly_one_gets_it(chores):
    chore = chores.create()
    workers = 8
    barrier = threading.Barrier(workers)
    claims: list[Claim | None] = []

    def worker() -> None:
        try:
            barrier.wait(timeout=10)
            claims.append(chores.claim(chore.pk))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    taken = [claim for claim in claims if claim is not None]
    assert len(claims) == workers and len(taken) == 1
    chore.refresh_from_db()
    assert (chore.status, chore.attempts, chore.claimed_at) == ("running", 1, taken[0].token)
    assert chore.lease_until > timezone.now()
    # A redelivered task later finds nothing to take either.
    assert chores.claim(chore.pk) is None


def test_a_job_whose_worker_died_is_queued_again_and_the_dead_claim_matches_nothing(chores):
    chore = chores.create()
    dead = chores.claim(chore.pk)
    assert dead is not None
    sent: list[int] = []
    assert chores.recover(send=sent.append) == Recovered(failed=0, requeued=0)  # alive

    chores.filter(pk=chore.pk).update(lease_until=a_moment_ago())  # it stopped renewing
    assert chores.recover(send=sent.append) == Recovered(failed=0, requeued=1)
    chore.refresh_from_db()
    assert chore.status == "queued" and chore.lease_until > timezone.now()
    assert sent == [chore.pk]
    assert chores.recover(send=sent.append) == Recovered(failed=0, requeued=0)  # fresh lease

    alive = chores.claim(chore.pk)
    assert alive is not None and alive.token != dead.token
    assert chores.get(pk=chore.pk).attempts == 2
    # The dead worker, were it to come back, can neither finish nor fail the job.
    assert not dead.finish(status="done") and not dead.fail(error="late")
    assert alive.finish(status="done")
    assert chores.get(pk=chore.pk).status == "done"


def test_a_queued_job_whose_task_never_came_is_sent_again(chores):
    chore = chores.create(lease_until=a_moment_ago())
    sent: list[int] = []
    assert chores.recover(send=sent.append).requeued == 1
    assert sent == [chore.pk] and chores.get(pk=chore.pk).attempts == 0


def test_a_running_job_whose_worker_died_can_be_taken_over_by_its_redelivered_task(chores):
    chore = chores.create()
    first = chores.claim(chore.pk)
    assert first is not None
    assert chores.claim(chore.pk) is None  # its lease holds
    chores.filter(pk=chore.pk).update(lease_until=a_moment_ago())
    second = chores.claim(chore.pk)
    assert second is not None and not first.rows.exists() and second.rows.exists()


def test_a_job_that_keeps_killing_its_workers_fails_with_its_reason(chores, settings):
    settings.WORK_MAX_ATTEMPTS = 2
    killer, other = chores.create(), chores.create()
    for chore in (killer, other):
        for _attempt in range(2):
            assert chores.claim(chore.pk) is not None
            chores.filter(pk=chore.pk).update(lease_until=a_moment_ago())
    # A redelivered task does not take it a third time: it fails it.
    assert chores.claim(killer.pk) is None
    killer.refresh_from_db()
    assert (killer.status, killer.error, killer.lease_until) == ("failed", Chore.LOST_ERROR, None)
    assert killer.finished_at is not None
    # The sweep does the same, and sends nothing.
    sent: list[int] = []
    assert chores.recover(send=sent.append) == Recovered(failed=1, requeued=0)
    assert chores.get(pk=other.pk).status == "failed" and sent == []


def test_a_failure_is_cut_to_its_column_and_a_retry_is_a_requeue(chores):
    chore = chores.create()
    claim = chores.claim(chore.pk)
    assert claim.requeue(delay=30, error="LMS down")
    chore.refresh_from_db()
    assert chore.status == "queued" and chore.error == "LMS down"
    assert chore.lease_until > timezone.now() + timedelta(seconds=30)
    assert not claim.fail(error="too late: it is queued, not this claim's")
    claim = chores.claim(chore.pk)
    assert claim.fail(error="x" * 5000)
    assert chores.get(pk=chore.pk).error == "x" * 5000  # a text column keeps it whole


def test_a_lease_is_renewed_while_work_runs_and_lost_when_another_worker_takes_over(chores):
    chore = chores.create()
    claim = chores.claim(chore.pk)
    full_lease = chores.get(pk=chore.pk).lease_until
    with claim.lease(seconds=2) as lease:
        deadline = time.monotonic() + 10
        renewed = full_lease
        while renewed == full_lease and time.monotonic() < deadline:
            time.sleep(0.05)
            renewed = chores.get(pk=chore.pk).lease_until
        assert timezone.now() < renewed < full_lease and not lease.lost
        # The worker looks dead to the others (say, a long pause): its job is taken over.
        chores.filter(pk=chore.pk).update(lease_until=a_moment_ago())
        other = chores.claim(chore.pk)
        assert other is not None
        deadline = time.monotonic() + 10
        while not lease.lost and time.monotonic() < deadline:
            time.sleep(0.05)
        assert lease.lost  # the work checks this and stops
    assert not claim.finish(status="done")
    assert chores.get(pk=chore.pk).claimed_at == other.token


# --- the sweep's registry ---------------------------------------------------------------


def test_every_app_registers_its_part_and_the_sweep_runs_them_all():
    assert {"replies", "materials", "proposals", "question_generations", "lti_score_posts"} <= set(
        jobs.sweeps()
    )
    counts = work_recover()
    assert {
        "replies_failed",
        "replies_resent",
        "materials",
        "proposals",
        "question_generations",
        "lti_score_posts",
    } <= set(counts)
    assert not any(counts.values())


def test_a_part_that_fails_does_not_keep_the_others_from_running(monkeypatch):
    ran: list[str] = []

    def broken():
        raise RuntimeError("broken part")

    parts = {"a": broken, "b": lambda: ran.append("b") or {"b": 1}}
    monkeypatch.setattr(jobs, "sweeps", lambda: parts)
    with pytest.raises(RuntimeError, match="broken part"):
        work_recover()
    assert ran == ["b"]
