"""The recovery sweep: work whose worker died, or whose task message was lost, is redone.

Every task claims its row with a conditional update and holds a lease on it while it
works (``config/jobs.py``), so a task that is delivered twice does its work once. What
is left is work that nobody will deliver again soon: a worker killed mid-way (Redis hands
its unacknowledged task back only after the visibility timeout) and a task that was never
sent (the broker was down when the transaction committed). Each app registers its part of
the sweep (``config.jobs.sweep_register``, from its ``AppConfig.ready``), which finds its
jobs by their lapsed leases and queues them again, or ends them as failed where redoing
them is not the product's call (a tutor reply the student may retry). Beat runs it every
minute, and every worker runs it as it starts, so restarting a dead worker resumes its work.
"""

from __future__ import annotations

import logging

from celery import shared_task
from celery.signals import worker_ready
from django.db import close_old_connections, connections

from config import jobs

logger = logging.getLogger(__name__)


@shared_task(name="config.recovery.work_recover")
def work_recover() -> dict[str, int]:
    """Run every registered part of the sweep; what each did, by count name. A part that
    fails does not keep the others from running; the first failure is raised after them."""
    counts: dict[str, int] = {}
    failure: Exception | None = None
    for name, sweep in jobs.sweeps().items():
        try:
            counts.update(sweep())
        except Exception as error:
            logger.exception("The recovery sweep's part %r failed", name)
            failure = failure or error
    if any(counts.values()):
        logger.warning("Recovered work left behind: %s", counts)
    if failure is not None:
        raise failure
    return counts


@worker_ready.connect
def _recover_on_start(**_kwargs) -> None:
    """A worker that starts (perhaps replacing one that died) sweeps at once, in its main
    process, rather than waiting up to a minute for beat."""
    close_old_connections()
    try:
        work_recover()
    except Exception:
        # Never a reason for the worker not to start.
        logger.exception("The recovery sweep at worker start failed; beat will run it")
    finally:
        # Prefork children must not share the main process's connection.
        connections.close_all()
