"""Names and Role Provisioning Services: a course's roster follows the LMS.

New members are enrolled with their mapped role; members the LMS no longer lists (or
lists as Inactive/Deleted) lose their place in the course. Their work stays, under the
retention rules, and comes back if they are enrolled again. Only people who came from
this platform are removed: accounts enrolled by hand are never touched.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone
from pylti1p3.names_roles import NamesRolesProvisioningService, TMember
from pylti1p3.service_connector import ServiceConnector

from learners.models import Membership
from lti.models import LtiContext, LtiIdentity
from lti.services import course_role, membership_set, user_for
from lti.tool_config import platform_registration

logger = logging.getLogger(__name__)


@dataclass
class RosterChange:
    enrolled: int = 0
    updated: int = 0
    removed: int = 0
    members: int = 0


def roster_members(context: LtiContext) -> list[TMember]:
    connector = ServiceConnector(platform_registration(context.platform))
    service = NamesRolesProvisioningService(
        connector, {"context_memberships_url": context.memberships_url}
    )
    return service.get_members()


def roster_sync(*, context: LtiContext) -> RosterChange:
    """Bring the course's members in line with the platform's roster."""
    members = roster_members(context)
    change = RosterChange(members=len(members))
    course = context.course
    active_subs = set()
    with transaction.atomic():
        for member in members:
            sub = str(member.get("user_id") or "")
            if not sub or str(member.get("status", "Active")) != "Active":
                continue
            active_subs.add(sub)
            user = user_for(platform=context.platform, sub=sub, claims=member)
            role = course_role(member.get("roles") or [])
            existing = Membership.objects.filter(user=user, course=course).first()
            membership_set(user=user, course=course, role=role)
            if existing is None:
                change.enrolled += 1
            elif existing.role != role:
                change.updated += 1
        from_platform = LtiIdentity.objects.filter(platform=context.platform)
        dropped = Membership.objects.filter(
            course=course, user__in=from_platform.values("user")
        ).exclude(user__in=from_platform.filter(sub__in=active_subs).values("user"))
        change.removed = dropped.count()
        dropped.delete()
        LtiContext.objects.filter(pk=context.pk).update(
            roster_synced_at=timezone.now(), roster_error=""
        )
    logger.info("LTI roster of context %s (course %s): %s", context.context_id, course.pk, change)
    return change
