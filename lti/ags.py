"""Assignment and Grade Services: a released grade goes to the LMS gradebook.

Releasing (or releasing again after a change) queues an ``LtiScorePost`` per linked
context; a Celery task claims it with a lease, finds or creates the line item and posts
the score with pylti1p3. A failure goes back to the queue with a growing delay, up to
``LTI_SCORE_MAX_ATTEMPTS``, then stays ``failed`` with its reason (the teacher's page
offers a retry). The post is a job of ``config/jobs.py``: the recovery sweep
(``config/recovery.py``) resends jobs whose task message or worker was lost, so a platform
or broker outage loses no grade.
"""

from __future__ import annotations

import logging
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from pylti1p3.assignments_grades import AssignmentsGradesService
from pylti1p3.exception import LtiServiceException
from pylti1p3.grade import Grade
from pylti1p3.lineitem import LineItem
from pylti1p3.service_connector import ServiceConnector

from config.jobs import Claim, queued_until
from lti.models import LtiContext, LtiIdentity, LtiLineItem, LtiScorePost
from lti.tool_config import platform_registration

logger = logging.getLogger(__name__)


def _comment(released: dict) -> str:
    lines = [
        f"{row['name']}: {row['score']}/{row['max']}"
        + (f" — {row['comment']}" if row.get("comment") else "")
        for row in released.get("criteria", [])
    ]
    for heading, key in (("Strengths", "strengths"), ("Next steps", "next_steps")):
        if released.get(key):
            lines.append(f"{heading}: " + "; ".join(released[key]))
    return "\n".join(lines)[:4000]


def score_posts_queue(*, review) -> list[LtiScorePost]:
    """Queue the released grade of ``review`` for every LMS course linked to its course
    where the learner came from (receiver of ``grading.signals.grade_released``)."""
    from lti.tasks import score_post_enqueue

    submission = review.submission
    released = review.released or {}
    if not released:
        return []
    platforms = LtiIdentity.objects.filter(user_id=submission.learner_id).values("platform_id")
    contexts = LtiContext.objects.filter(
        course_id=submission.assignment.course_id, platform_id__in=platforms
    ).exclude(lineitems_url="")
    posts = []
    for context in contexts:
        post, _created = LtiScorePost.objects.update_or_create(
            submission=submission,
            context=context,
            defaults={
                "score_given": Decimal(released["total"]),
                "score_maximum": Decimal(released["max_total"]),
                "comment": _comment(released),
                "status": LtiScorePost.Status.QUEUED,
                "attempts": 0,
                "error": "",
                "lease_until": queued_until(),
            },
        )
        score_post_enqueue(post_id=post.pk)
        posts.append(post)
    return posts


def backoff_seconds(attempts: int) -> float:
    return min(
        settings.LTI_SCORE_BACKOFF_SECONDS * (2 ** max(attempts - 1, 0)),
        settings.LTI_SCORE_BACKOFF_MAX_SECONDS,
    )


def score_post_claim(*, post_id: int) -> Claim | None:
    """Take a queued post (or one whose worker died) for this worker, or None."""
    return LtiScorePost.objects.claim(post_id)


class PermanentFailure(Exception):
    """Retrying cannot help (no scope, no identity): fail at once."""


def _service(context: LtiContext) -> AssignmentsGradesService:
    connector = ServiceConnector(platform_registration(context.platform))
    return AssignmentsGradesService(
        connector, {"scope": list(context.ags_scopes), "lineitems": context.lineitems_url}
    )


def _line_item(service: AssignmentsGradesService, post: LtiScorePost) -> LineItem:
    assignment = post.submission.assignment
    known = LtiLineItem.objects.filter(context=post.context, assignment=assignment).first()
    if known:
        return LineItem({"id": known.url})
    line = service.find_or_create_lineitem(
        LineItem()
        .set_label(assignment.title)
        .set_score_maximum(float(post.score_maximum))
        .set_resource_id(f"assignment-{assignment.pk}")
        .set_tag("tutor-assignment"),
        find_by="resource_id",
    )
    url = line.get_id()
    if not url:
        raise PermanentFailure("The LMS made a gradebook column without an id.")
    LtiLineItem.objects.update_or_create(
        context=post.context, assignment=assignment, defaults={"url": url}
    )
    return line


def score_post_deliver(post: LtiScorePost) -> None:
    """One attempt at sending; raises on failure."""
    identity = LtiIdentity.objects.filter(
        user_id=post.submission.learner_id, platform_id=post.context.platform_id
    ).first()
    if identity is None:
        raise PermanentFailure("The learner has no account on this LMS any more.")
    service = _service(post.context)
    if not service.can_put_grade():
        raise PermanentFailure("The LMS did not grant the score scope to this tool.")
    grade = (
        Grade()
        .set_score_given(float(post.score_given))
        .set_score_maximum(float(post.score_maximum))
        .set_timestamp(timezone.now().isoformat())
        .set_activity_progress("Completed")
        .set_grading_progress("FullyGraded")
        .set_user_id(identity.sub)
        .set_comment(post.comment)
    )
    service.put_grade(grade, _line_item(service, post))


def _reason(error: Exception) -> str:
    if isinstance(error, LtiServiceException):
        response = getattr(error, "response", None)
        status = getattr(response, "status_code", "?")
        return f"The LMS answered HTTP {status}: {str(error)[:300]}"
    return f"{type(error).__name__}: {error}"[:500]


def score_post_send(*, post_id: int) -> str:
    """Claim, send and record one post; returns its state afterwards."""
    from lti.tasks import score_post_enqueue

    claim = score_post_claim(post_id=post_id)
    if claim is None:
        return "not-claimed"
    post = claim.rows.select_related("submission__assignment", "context__platform").first()
    if post is None:
        return "not-claimed"
    try:
        with claim.lease():
            score_post_deliver(post)
    except PermanentFailure as error:
        claim.fail(error=str(error))
        logger.warning("LTI score post %s failed for good: %s", post_id, error)
        return LtiScorePost.Status.FAILED
    except Exception as error:
        reason = _reason(error)
        if post.attempts >= LtiScorePost.max_attempts():
            claim.fail(error=reason)
            logger.warning(
                "LTI score post %s failed after %s attempts: %s", post_id, post.attempts, reason
            )
            return LtiScorePost.Status.FAILED
        delay = backoff_seconds(post.attempts)
        with transaction.atomic():
            if claim.requeue(delay=delay, error=reason):
                score_post_enqueue(post_id=post_id, delay=delay)
        logger.info("LTI score post %s will be retried in %.0fs: %s", post_id, delay, reason)
        return LtiScorePost.Status.QUEUED
    claim.finish(status=LtiScorePost.Status.SENT, sent_at=timezone.now(), error="")
    return LtiScorePost.Status.SENT


def score_post_retry(*, post: LtiScorePost) -> None:
    """A teacher's retry of a failed post."""
    from lti.tasks import score_post_enqueue

    with transaction.atomic():
        if LtiScorePost.objects.filter(pk=post.pk, status=LtiScorePost.Status.FAILED).requeue(
            attempts=0
        ):
            score_post_enqueue(post_id=post.pk)


def score_posts_recover() -> int:
    """Queue again the posts whose task message was lost or whose worker died (those
    that killed their workers ``LTI_SCORE_MAX_ATTEMPTS`` times fail); how many."""
    from lti.tasks import score_post_enqueue

    return LtiScorePost.objects.recover(send=lambda pk: score_post_enqueue(post_id=pk)).requeued
