"""The recovery sweep: work whose worker died, or whose task message was lost, is redone.

Every task claims its row with a conditional update and holds a lease on it while it
works (``config/leases.py``), so a task that is delivered twice does its work once. What
is left is work that nobody will deliver again soon: a worker killed mid-way (Redis hands
its unacknowledged task back only after the visibility timeout) and a task that was never
sent (the broker was down when the transaction committed). This sweep finds both by
their lapsed leases and queues them again, or ends them as failed where redoing them is
not the product's call (a tutor reply the student may retry). Beat runs it every minute,
and every worker runs it as it starts, so restarting a dead worker resumes its work.
"""

from __future__ import annotations

import logging

from celery import shared_task
from celery.signals import worker_ready
from django.db import close_old_connections, connections

logger = logging.getLogger(__name__)


@shared_task(name="config.recovery.work_recover")
def work_recover() -> dict[str, int]:
    """Queue again (or fail) the materials, replies, grade proposals, question-writing jobs
    and grades for an LMS left behind."""
    from grading.services import proposals_recover
    from learners.practice_jobs import generations_recover
    from lti.ags import score_posts_recover
    from material.services import materials_recover
    from tutor.conversations import replies_recover

    replies_failed, replies_resent = replies_recover()
    counts = {
        "materials": materials_recover(),
        "replies_failed": replies_failed,
        "replies_resent": replies_resent,
        "proposals": proposals_recover(),
        "lti_score_posts": score_posts_recover(),
        "question_generations": generations_recover(),
    }
    if any(counts.values()):
        logger.warning("Recovered work left behind: %s", counts)
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
