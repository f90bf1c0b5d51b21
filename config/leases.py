"""Leases on work that a worker claimed, so that work whose worker died is found and redone.

A row that stands for a job (a material to ingest, a tutor reply, a grade proposal) has a
``lease_until`` column: while the job waits in the queue it is when the task should have
been picked up; while a worker runs it, the worker renews it from a background thread
(``Lease``) every quarter of ``WORK_LEASE_SECONDS``. A worker killed outright (SIGKILL,
out of memory, a lost machine) stops renewing; once the lease has lapsed, the recovery
sweep (``config/recovery.py``) hands the job to another worker or ends it as failed.

This is faster and surer than waiting for the broker: Redis returns an unacknowledged
task only after the visibility timeout (longer than the task time limit, so that a slow
task is never run twice), and only if its message survived.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models import Q, QuerySet
from django.utils import timezone

logger = logging.getLogger(__name__)


def lease_seconds() -> float:
    return float(settings.WORK_LEASE_SECONDS)


def requeue_seconds() -> float:
    return float(settings.WORK_REQUEUE_SECONDS)


def lease_until(*, seconds: float | None = None, now: datetime | None = None) -> datetime:
    """When a lease taken now ends (``WORK_LEASE_SECONDS`` unless ``seconds`` is given)."""
    return (now or timezone.now()) + timedelta(
        seconds=lease_seconds() if seconds is None else seconds
    )


def queued_until(*, delay: float = 0.0, now: datetime | None = None) -> datetime:
    """The lease of a job that has just been queued: a worker should have taken it by then
    (after ``delay`` seconds of a countdown), or its task message was lost."""
    return lease_until(seconds=delay + requeue_seconds(), now=now)


def lapsed(*, now: datetime | None = None) -> Q:
    """Rows whose lease has run out (rows with no lease at all are left to older rules)."""
    return Q(lease_until__lt=now or timezone.now())


class Lease:
    """Renews the lease of one claimed row while a block of work runs.

    ``rows`` is a queryset that matches the row only while this worker holds it (its pk,
    its running status and the claim's token); when an update matches nothing, someone
    else took the work over or ended it, and ``lost`` turns true so the work can stop.
    The background thread opens a database connection for each renewal and closes it
    again, so a long job (a streamed reply) holds no connection in between.
    """

    def __init__(self, rows: QuerySet, *, seconds: float | None = None) -> None:
        self.rows = rows
        self.seconds = lease_seconds() if seconds is None else seconds
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
