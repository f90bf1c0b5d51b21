"""Consent to AI processing: recording it, and deciding whether AI features may run."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext as _

from learners.models import AIConsent, Course

if TYPE_CHECKING:
    from learners.models import User


@dataclass(frozen=True)
class AIAccess:
    allowed: bool
    reason: str = ""


def _age_on(birth_date: dt.date, today: dt.date) -> int:
    return (
        today.year
        - birth_date.year
        - ((today.month, today.day) < (birth_date.month, birth_date.day))
    )


def consent_record(*, user: User, granted: bool, given_by: str, recorded_by=None) -> AIConsent:
    return AIConsent.objects.create(
        user=user,
        granted=granted,
        given_by=given_by,
        version=settings.AI_CONSENT_VERSION,
        recorded_by=recorded_by,
    )


def ai_access(*, user: User, course: Course) -> AIAccess:
    """May AI features (tutor replies, AI grading) process this user's work in this course?

    The newest consent row for the current wording version decides; a learner under the
    minimum age needs it from a guardian or the school.
    """
    latest = (
        AIConsent.objects.filter(user=user, version=settings.AI_CONSENT_VERSION)
        .order_by("-recorded_at", "-id")
        .first()
    )
    is_minor = user.birth_date is not None and (
        _age_on(user.birth_date, timezone.localdate()) < settings.AI_CONSENT_MIN_AGE
    )
    if is_minor and not (
        latest and latest.granted and latest.given_by != AIConsent.GivenBy.LEARNER
    ):
        return AIAccess(
            False,
            _(
                "AI features need the consent of a parent, guardian or your school first. "
                "Please ask your teacher."
            ),
        )
    if course.requires_ai_consent and not (latest and latest.granted):
        return AIAccess(
            False, _("Please agree to AI processing of your messages before using the tutor.")
        )
    return AIAccess(True)
