"""A course's roster: who is enrolled, when they last signed in, and removing someone."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.utils.translation import gettext as _

from learners.audit import audit_record
from learners.models import AuditEvent, Course, Membership

if TYPE_CHECKING:
    from learners.models import User


ROSTER_PAGE_SIZE = 50


def roster_for_course(*, course: Course, query: str = "", role: str = "") -> QuerySet[Membership]:
    """The course's memberships with their people, teachers first, then by name."""
    rows = Membership.objects.filter(course=course).select_related("user")
    if role in Membership.Role.values:
        rows = rows.filter(role=role)
    query = query.strip()
    if query:
        rows = rows.filter(
            Q(user__username__icontains=query)
            | Q(user__display_name__icontains=query)
            | Q(user__email__icontains=query)
            | Q(user__first_name__icontains=query)
            | Q(user__last_name__icontains=query)
        )
    return rows.order_by("-role", "user__display_name", "user__username", "pk")


def membership_remove(*, membership: Membership, actor: User) -> None:
    """Take someone out of the course. Their work (essays, answers) stays; they can no
    longer open the course. Nobody removes themselves here, and only administrators
    remove teachers."""
    if membership.user_id == actor.pk:
        raise PermissionDenied(_("You cannot remove yourself from the course."))
    if membership.role == Membership.Role.TEACHER and not actor.is_staff:
        raise PermissionDenied(_("Only an administrator can remove a teacher."))
    audit_record(
        action=AuditEvent.Action.ROLE_CHANGED,
        actor=actor,
        target=membership.user,
        before={"role": membership.role},
        after={"role": None},
        reason=_("Removed from the course"),
        course_id=membership.course_id,
    )
    membership.delete()
