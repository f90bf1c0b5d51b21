"""Celery tasks of LTI: grade passback and roster sync. Both are network calls to the
LMS, so CELERY_TASK_ROUTES sends them to the I/O-bound ``llm`` queue (thread pool), not
the ``cpu`` one."""

from __future__ import annotations

import logging

from celery import shared_task

from config.celery import enqueue_on_commit

logger = logging.getLogger(__name__)


def score_post_enqueue(*, post_id: int, delay: float = 0.0) -> None:
    enqueue_on_commit(score_post, post_id, countdown=delay)


def roster_sync_enqueue(*, context_id: int) -> None:
    enqueue_on_commit(roster_sync, context_id)


@shared_task(name="lti.tasks.score_post", acks_late=True)
def score_post(post_id: int) -> str:
    from lti.ags import score_post_send

    return str(score_post_send(post_id=post_id))


@shared_task(name="lti.tasks.roster_sync", acks_late=True)
def roster_sync(context_id: int) -> dict | None:
    from lti.models import LtiContext
    from lti.roster import roster_sync as sync

    context = LtiContext.objects.select_related("platform", "course").filter(pk=context_id).first()
    if context is None or not context.memberships_url or not context.platform.is_active:
        return None
    try:
        change = sync(context=context)
    except Exception as error:
        # The next launch by a teacher, or tomorrow's run, tries again.
        LtiContext.objects.filter(pk=context_id).update(roster_error=str(error)[:1000])
        logger.warning("LTI roster sync of context %s failed: %r", context_id, error)
        return None
    return change.__dict__


@shared_task(name="lti.tasks.roster_sync_all")
def roster_sync_all() -> int:
    """Beat, daily: every linked course with a roster service."""
    from lti.models import LtiContext

    ids = list(
        LtiContext.objects.filter(platform__is_active=True)
        .exclude(memberships_url="")
        .values_list("pk", flat=True)
    )
    for context_id in ids:
        roster_sync.apply_async(args=[context_id], ignore_result=True)
    return len(ids)
