"""Write use cases about courses and roles."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import transaction

from learners.audit import audit_record
from learners.models import AuditEvent, Course, Membership

if TYPE_CHECKING:
    from learners.models import User


@transaction.atomic
def membership_set_role(
    *, actor: User, user: User, course: Course, role: str | None
) -> Membership | None:
    """Give ``user`` the ``role`` in ``course`` (None removes them); audited."""
    current = Membership.objects.select_for_update().filter(user=user, course=course).first()
    before = {"role": current.role} if current else None
    if role is None:
        if current is not None:
            current.delete()
        membership = None
    elif current is None:
        membership = Membership.objects.create(user=user, course=course, role=role)
    else:
        current.role = role
        current.save(update_fields=["role"])
        membership = current
    after = {"role": role} if role else None
    if before != after:
        audit_record(
            action=AuditEvent.Action.ROLE_CHANGED,
            actor=actor,
            target=user,
            before=before,
            after=after,
            course_id=course.pk,
        )
    return membership
