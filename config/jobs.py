"""One job machine: a row that stands for work a worker does (a material to ingest, a
tutor reply, a grade proposal, practice questions, a grade for an LMS) and the ways it
moves between states.

A job's row exists before its task is sent (on commit). Its life, whatever its model:

- **queued** (``Job.QUEUED``): waiting for a worker, with a lease (``lease_until``) by
  which its task message should have arrived (``queued_until``);
- **claim**: a worker takes it with one conditional update (``JobQuerySet.claim``), so
  of two deliveries of the same task only one gets it; the claim's token is the time it
  was taken (``claimed_at``), and ``attempts`` counts the claims;
- **lease**: while the worker runs, a background thread renews the lease
  (``Claim.lease``, ``Lease``) every quarter of ``WORK_LEASE_SECONDS``; a worker whose
  row moved on (taken over, stopped, removed) finds the renewal matching nothing and
  stops (``lease.lost``). A worker killed outright (SIGKILL, out of memory, a lost
  machine) stops renewing;
- **requeue**: back to the queue, for a retry after a delay or because its worker died
  (its lease lapsed) or its task message was lost;
- **lapse**: a lease that ran out means nobody is working on the job: the recovery sweep
  (``config/recovery.py``) finds it by ``lapsed()``. This is faster and surer than
  waiting for the broker: Redis returns an unacknowledged task only after the visibility
  timeout (longer than the task time limit, so that a slow task is never run twice), and
  only if its message survived;
- **abandon**: a job whose workers died on it ``max_attempts()`` times is failed with
  the model's ``LOST_ERROR`` rather than taken over again.

Each app registers its part of the sweep here (``sweep_register`` from its
``AppConfig.ready``); the sweep runs every registered part and knows no app by name.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar, NamedTuple, cast

from django.conf import settings
from django.db import DatabaseError, connection, models, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone
from django.utils.functional import Promise

logger = logging.getLogger(__name__)


# --- leases -----------------------------------------------------------------------------


def lease_until(*, seconds: float | None = None, now: datetime | None = None) -> datetime:
    """When a lease taken now ends (``WORK_LEASE_SECONDS`` unless ``seconds`` is given)."""
    if seconds is None:
        seconds = float(settings.WORK_LEASE_SECONDS)
    return (now or timezone.now()) + timedelta(seconds=seconds)


def queued_until(*, delay: float = 0.0, now: datetime | None = None) -> datetime:
    """The lease of a job that has just been queued: a worker should have taken it by then
    (after ``delay`` seconds of a countdown), or its task message was lost."""
    return lease_until(seconds=delay + float(settings.WORK_REQUEUE_SECONDS), now=now)


class Lease:
    """Renews the lease of one claimed row while a block of work runs.

    ``rows`` is a queryset that matches the row only while this worker holds it (its pk,
    its running status and the claim's token: ``Claim.rows``); when an update matches
    nothing, someone else took the work over or ended it, and ``lost`` turns true so the
    work can stop. The background thread opens a database connection for each renewal
    and closes it again, so a long job (a streamed reply) holds no connection in between.
    """

    def __init__(self, rows: QuerySet, *, seconds: float | None = None) -> None:
        self.rows = rows
        self.seconds = float(settings.WORK_LEASE_SECONDS) if seconds is None else seconds
        self.lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def renew(self) -> bool:
        """Push the lease forward once; False when the row is no longer ours."""
        try:
            if not self.rows.update(lease_until=lease_until(seconds=self.seconds)):
                self.lost = True
        except DatabaseError as error:
            # Not lost yet: the next renewal may get through before the lease lapses.
            logger.warning("Could not renew the lease of %s: %r", self.rows.model.__name__, error)
        return not self.lost

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.seconds / 4) and self.renew():
                connection.close()
        finally:
            connection.close()

    def __enter__(self) -> Lease:
        self._thread = threading.Thread(target=self._run, name="lease", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._thread is not None:
            # A renewal stuck on the database must not hold up the worker; the thread
            # ends on its own once the query returns.
            self._thread.join(timeout=5)


# --- the machine ------------------------------------------------------------------------


class Recovered(NamedTuple):
    """What one kind of job's sweep did: jobs failed (abandoned), jobs queued again."""

    failed: int
    requeued: int


class JobQuerySet(models.QuerySet):
    """The job machine's moves; each is one conditional update on the rows selected."""

    @property
    def job_model(self) -> type[Job]:
        """The model, as a job (its states and rules are class attributes)."""
        return cast("type[Job]", self.model)

    # --- states --------------------------------------------------------------------------

    def queued(self) -> JobQuerySet:
        return self.filter(status=self.job_model.QUEUED)

    def running(self) -> JobQuerySet:
        return self.filter(status=self.job_model.RUNNING)

    def lapsed(self, *, now: datetime | None = None) -> JobQuerySet:
        """Unfinished jobs whose lease ran out: queued ones whose task message never came,
        running ones whose worker stopped renewing (rows with no lease are never lapsed)."""
        return self.filter(
            status__in=[self.job_model.QUEUED, self.job_model.RUNNING],
            lease_until__lt=now or timezone.now(),
        )

    def _exhausted(self, now: datetime) -> Q:
        """Running, lease lapsed, and no attempt left: its workers died on it too often."""
        return Q(
            status=self.job_model.RUNNING,
            lease_until__lt=now,
            attempts__gte=self.job_model.max_attempts(),
        )

    # --- moves ---------------------------------------------------------------------------

    def claim(self, pk: int, **fields: Any) -> Claim | None:
        """Take job ``pk`` for this worker: a queued one, or a running one whose worker died
        (lease lapsed) with attempts left. One conditional update, so only one of two
        workers gets it. Returns the claim, or None (done, failed, taken, or abandoned
        here because its workers died on it too often). ``fields`` are set with it."""
        model = self.job_model
        now = timezone.now()
        claimable = Q(status=model.QUEUED) | Q(
            status=model.RUNNING, lease_until__lt=now, attempts__lt=model.max_attempts()
        )
        if self.filter(claimable, pk=pk).update(
            status=model.RUNNING,
            claimed_at=now,
            lease_until=lease_until(now=now),
            attempts=F("attempts") + 1,
            **fields,
        ):
            return Claim(model=model, pk=pk, token=now)
        self.filter(pk=pk).abandon(now=now)
        return None

    def requeue(self, *, delay: float = 0.0, now: datetime | None = None, **fields: Any) -> int:
        """Put the selected jobs back in the queue; their task should arrive within
        ``delay`` seconds (its countdown) plus ``WORK_REQUEUE_SECONDS``."""
        return self.update(
            status=self.job_model.QUEUED, lease_until=queued_until(delay=delay, now=now), **fields
        )

    def fail(self, *, error: str, now: datetime | None = None, **fields: Any) -> int:
        """End the selected jobs as failed with ``error`` (cut to the column's length)."""
        model = self.job_model
        limit = getattr(model._meta.get_field("error"), "max_length", None)
        ended: dict[str, Any] = {
            "status": model.FAILED,
            "error": str(error)[:limit] if limit else str(error),
        }
        if model.FINISHED_FIELD:
            ended[model.FINISHED_FIELD] = now or timezone.now()
        return self.update(lease_until=None, **{**ended, **fields})

    def abandon(self, *, now: datetime | None = None, also: Q | None = None) -> int:
        """Fail, with the model's ``LOST_ERROR``, the selected jobs whose workers died on
        them too often (and those matching ``also``: a model's own limits). One by one, each
        conditional on the status read, so a worker that finished it meanwhile wins.
        Returns how many ended so."""
        now = now or timezone.now()
        left = self._exhausted(now) | also if also is not None else self._exhausted(now)
        ended = 0
        for pk, status in self.filter(left).values_list("pk", "status"):
            if self.filter(left, pk=pk, status=status).fail(
                error=str(self.job_model.LOST_ERROR), now=now, **self.abandon_fields(pk)
            ):
                logger.warning(
                    "%s %s was %s with no live worker; failed", self.job_model.__name__, pk, status
                )
                self.after_abandon(pk)
                ended += 1
        return ended

    def abandon_fields(self, pk: int) -> dict[str, Any]:
        """More columns to write on job ``pk`` as it is abandoned (a model's queryset may
        say: a reply keeps what it streamed)."""
        return {}

    def after_abandon(self, pk: int) -> None:
        """Called once job ``pk`` was abandoned (a model's queryset may clean up)."""

    def recover(
        self,
        *,
        send: Callable[[int], None],
        now: datetime | None = None,
        also: Q | None = None,
        **fields: Any,
    ) -> Recovered:
        """The recovery sweep's part for one kind of job: abandon those that killed too
        many workers (or match ``also``), and queue again those whose lease lapsed (queued:
        their task message was lost; running with attempts left: their worker died), each
        with a conditional update on the claim read, so a worker that took one over
        meanwhile keeps it. ``send(pk)`` sends the job's task on commit
        (``config.celery.enqueue_on_commit``); ``fields`` are written with the requeue.
        Returns how many failed and how many were queued again."""
        now = now or timezone.now()
        failed = self.abandon(now=now, also=also)
        model = self.job_model
        left = Q(status=model.QUEUED) | Q(status=model.RUNNING, attempts__lt=model.max_attempts())
        candidates = self.lapsed(now=now).filter(left)
        requeued = 0
        for pk, status, claimed_at in candidates.values_list("pk", "status", "claimed_at"):
            with transaction.atomic():
                if candidates.filter(pk=pk, status=status, claimed_at=claimed_at).requeue(
                    now=now, **fields
                ):
                    logger.warning(
                        "%s %s was %s with no live worker; queued again",
                        model.__name__,
                        pk,
                        status,
                    )
                    send(pk)
                    requeued += 1
        return Recovered(failed=failed, requeued=requeued)


class Job(models.Model):
    """A tracked job (abstract): its state columns and the machine's moves
    (``objects``, a ``JobQuerySet``).

    A model names its own states (``QUEUED``, ``RUNNING``, ``FAILED`` point at its
    ``status`` choices, which it declares by overriding ``status``), the reason written when
    its workers died on it too often (``LOST_ERROR``), the column its end time goes to
    (``FINISHED_FIELD``), and may bound its attempts differently (``max_attempts``).
    """

    QUEUED: ClassVar[str] = "queued"
    RUNNING: ClassVar[str] = "running"
    FAILED: ClassVar[str] = "failed"
    # A lazy translation where the reason is shown to people (material).
    LOST_ERROR: ClassVar[str | Promise] = (
        "WorkerLost: the worker doing this job stopped too many times"
    )
    FINISHED_FIELD: ClassVar[str | None] = None

    status = models.CharField(max_length=12)
    # Claims since a person last queued it; bounds the takeovers of dead workers' jobs.
    attempts = models.PositiveSmallIntegerField(default=0)
    # When the current claim was taken: its token (a worker whose claim was taken over
    # matches nothing and writes nothing).
    claimed_at = models.DateTimeField(null=True, blank=True)
    # Queued: by when its task should arrive; running: until when its worker is trusted.
    lease_until = models.DateTimeField(null=True, blank=True)
    # Why it failed (or why its last try did).
    error = models.TextField(blank=True)

    objects = JobQuerySet.as_manager()

    class Meta:
        abstract = True

    @classmethod
    def max_attempts(cls) -> int:
        """Claims a job may have before a dead worker's job is failed, not taken over."""
        return settings.WORK_MAX_ATTEMPTS


@dataclass(frozen=True)
class Claim:
    """One worker's hold on one job: its rows match only while the claim holds."""

    model: type[Job]
    pk: int
    token: datetime

    @property
    def rows(self) -> JobQuerySet:
        return self.model._default_manager.filter(
            pk=self.pk, status=self.model.RUNNING, claimed_at=self.token
        )

    def lease(self, *, seconds: float | None = None) -> Lease:
        """Renew the lease while a block of work runs; ``lease.lost`` once it is not ours."""
        return Lease(self.rows, seconds=seconds)

    def finish(self, *, status: str, **fields: Any) -> bool:
        """End the job as ``status`` (done, sent...) if the claim still holds."""
        return bool(self.rows.update(status=status, lease_until=None, **fields))

    def requeue(self, *, delay: float = 0.0, **fields: Any) -> bool:
        return bool(self.rows.requeue(delay=delay, **fields))

    def fail(self, *, error: str, **fields: Any) -> bool:
        return bool(self.rows.fail(error=error, **fields))


# --- the recovery sweep's registry ------------------------------------------------------

Counts = Mapping[str, int]
_sweeps: dict[str, Callable[[], Counts]] = {}


def sweep_register(name: str, sweep: Callable[[], Counts]) -> None:
    """Add an app's part of the recovery sweep (from its ``AppConfig.ready``): a function
    that finds its jobs left behind and returns what it did, by count name."""
    _sweeps[name] = sweep


def sweeps() -> dict[str, Callable[[], Counts]]:
    """The registered parts, by name."""
    return dict(_sweeps)
