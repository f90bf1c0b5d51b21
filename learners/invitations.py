"""Invitation links: whoever holds one joins a course in its role until it expires or a
teacher revokes it. The link's token is the only secret; an expired or revoked link
answers with a page that says so (``learners.people_views.join``)."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import TYPE_CHECKING

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from learners.audit import audit_record
from learners.models import AuditEvent, Course, Invitation, Membership

if TYPE_CHECKING:
    from learners.models import User


INVITATION_DAYS = (1, 7, 30)


def invitation_create(*, course: Course, role: str, days: int, actor: User) -> Invitation:
    """A new link for ``role`` in ``course``, valid for ``days`` days. Teachers invite
    students; administrators invite teachers too."""
    if role not in Membership.Role.values:
        raise ValidationError(_("Choose student or teacher."))
    if days not in INVITATION_DAYS:
        raise ValidationError(_("Choose how long the link stays valid."))
    if role == Membership.Role.TEACHER and not actor.is_staff:
        raise PermissionDenied(_("Only an administrator can invite teachers."))
    return Invitation.objects.create(
        course=course,
        role=role,
        token=secrets.token_urlsafe(24),
        created_by=actor,
        expires_at=timezone.now() + timedelta(days=days),
    )


def invitation_revoke(*, invitation: Invitation) -> Invitation:
    if invitation.revoked_at is None:
        invitation.revoked_at = timezone.now()
        invitation.save(update_fields=["revoked_at"])
    return invitation


def invitation_state(*, invitation: Invitation, now=None) -> str:
    """ "usable", "expired" or "revoked"."""
    if invitation.revoked_at is not None:
        return "revoked"
    if invitation.expires_at <= (now or timezone.now()):
        return "expired"
    return "usable"


def invitations_for_course(*, course: Course):
    """The course's links that still work, newest first."""
    return Invitation.objects.filter(course=course).usable(now=timezone.now())


def invitation_accept(*, invitation: Invitation, user: User) -> Membership:
    """Enrol ``user`` in the invitation's course and role. Someone already in the course
    keeps their role (a student link never demotes a teacher)."""
    state = invitation_state(invitation=invitation)
    if state != "usable":
        raise ValidationError(state)
    existing = Membership.objects.filter(user=user, course=invitation.course).first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            membership = Membership.objects.create(
                user=user, course=invitation.course, role=invitation.role
            )
            Invitation.objects.filter(pk=invitation.pk).update(uses=F("uses") + 1)
            audit_record(
                action=AuditEvent.Action.ROLE_CHANGED,
                actor=user,
                target=user,
                before={"role": None},
                after={"role": invitation.role},
                reason=_("Joined with an invitation link"),
                course_id=invitation.course_id,
                details={"invitation_id": invitation.pk},
            )
    except IntegrityError:  # joined twice at once: the first one counts
        return Membership.objects.get(user=user, course=invitation.course)
    return membership
