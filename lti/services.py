"""What a valid launch does here: the person, the course, their role, where they land."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify
from django.utils.translation import gettext as _

from grading.models import Assignment
from learners.models import Course, Membership, User
from lti.launch import (
    AGS_CLAIM,
    CONTEXT_CLAIM,
    CUSTOM_CLAIM,
    DEPLOYMENT_CLAIM,
    NRPS_CLAIM,
    ROLES_CLAIM,
    LaunchError,
)
from lti.models import LtiContext, LtiIdentity, LtiLineItem, LtiPlatform

# Context (membership) roles that teach; the rest of a course's members study. An LMS
# administrator gets no site-wide rights here: only the role in the course counts.
TEACHING_ROLES = {"Instructor", "TeachingAssistant", "ContentDeveloper", "Administrator"}
LEARNING_ROLES = {"Learner", "Member", "Mentor"}
_MEMBERSHIP_ROLE_PREFIXES = (
    "http://purl.imsglobal.org/vocab/lis/v2/membership#",
    "http://purl.imsglobal.org/vocab/lis/v2/membership/",
)


def _context_role_names(roles: list[str]) -> set[str]:
    """Short names of the context roles among LTI role URIs ("Instructor", "Learner",
    "TeachingAssistant" from ``membership/Instructor#TeachingAssistant``). Institution and
    system roles are left out: they say nothing about this course."""
    names: set[str] = set()
    for role in roles or []:
        role = str(role)
        if role.startswith(_MEMBERSHIP_ROLE_PREFIXES):
            tail = role.split("membership", 1)[1].lstrip("#/")
            names.update(part for part in tail.replace("#", "/").split("/") if part)
        elif "/" not in role and "#" not in role:  # the short form NRPS may use
            names.add(role)
    return names


def course_role(roles: list[str]) -> str:
    """Our role for LTI roles: teacher for Instructor, TeachingAssistant, ContentDeveloper
    (and a course Administrator); student otherwise."""
    if _context_role_names(roles) & TEACHING_ROLES:
        return Membership.Role.TEACHER
    return Membership.Role.STUDENT


def _username(platform: LtiPlatform, sub: str) -> str:
    digest = hashlib.sha256(f"{platform.pk}:{sub}".encode()).hexdigest()[:20]
    return f"lti-{digest}"


def _names(claims: Mapping[str, Any]) -> dict[str, str]:
    fields = {
        "first_name": str(claims.get("given_name") or "")[:150],
        "last_name": str(claims.get("family_name") or "")[:150],
        "email": str(claims.get("email") or "")[:254],
        "display_name": str(claims.get("name") or "")[:150],
    }
    return {name: value for name, value in fields.items() if value}


def user_for(*, platform: LtiPlatform, sub: str, claims: Mapping[str, Any]) -> User:
    """The person with this ``sub`` on this platform, made on first sight with no usable
    password (they sign in through the LMS); the names the platform shares are kept fresh."""
    sub = str(sub)
    identity = LtiIdentity.objects.select_related("user").filter(platform=platform, sub=sub).first()
    names = _names(claims)
    if identity is None:
        try:
            with transaction.atomic():
                user = User(username=_username(platform, sub), **names)
                user.set_unusable_password()
                user.save()
                identity = LtiIdentity.objects.create(user=user, platform=platform, sub=sub)
        except IntegrityError:  # made meanwhile by a parallel launch or roster sync
            identity = LtiIdentity.objects.select_related("user").get(platform=platform, sub=sub)
    user = identity.user
    changed = [name for name, value in names.items() if getattr(user, name) != value]
    if changed:
        for name in changed:
            setattr(user, name, names[name])
        user.save(update_fields=changed)
    return user


def _unique_slug(title: str) -> str:
    return f"{slugify(title)[:60] or 'course'}-{uuid.uuid4().hex[:8]}"


def context_for(
    *, platform: LtiPlatform, claims: dict[str, Any], deployment_id: str | None
) -> LtiContext:
    """The course linked to the launch's context, made on first launch."""
    context = claims.get(CONTEXT_CLAIM)
    if not isinstance(context, dict) or not context.get("id"):
        raise LaunchError(
            "missing_context",
            _(
                "The LMS sent no course (context) with this launch. Add the tool inside a "
                "course, not on a global menu."
            ),
        )
    context_id = str(context["id"])
    title = str(context.get("title") or context.get("label") or _("Course from the LMS"))[:200]
    found = LtiContext.objects.select_related("course").filter(
        platform=platform, context_id=context_id
    )
    link = found.first()
    if link is None:
        try:
            with transaction.atomic():
                course = Course.objects.create(title=title, slug=_unique_slug(title))
                link = LtiContext.objects.create(
                    platform=platform, context_id=context_id, course=course, title=title
                )
        except IntegrityError:
            link = found.get()
    deployment = platform.deployments.filter(deployment_id=deployment_id).first()
    nrps = claims.get(NRPS_CLAIM) or {}
    ags = claims.get(AGS_CLAIM) or {}
    updates = {
        "title": title,
        "deployment": deployment,
        "memberships_url": str(nrps.get("context_memberships_url") or link.memberships_url),
        "lineitems_url": str(ags.get("lineitems") or link.lineitems_url),
        "ags_scopes": list(ags.get("scope") or link.ags_scopes),
    }
    changed = [name for name, value in updates.items() if getattr(link, name) != value]
    if changed:
        for name in changed:
            setattr(link, name, updates[name])
        link.save(update_fields=changed)
    return link


def membership_set(*, user: User, course: Course, role: str) -> Membership:
    membership, created = Membership.objects.get_or_create(
        user=user, course=course, defaults={"role": role}
    )
    if not created and membership.role != role:
        membership.role = role
        membership.save(update_fields=["role"])
    return membership


@dataclass
class Target:
    """Where a resource link leads: ``tutor``, ``practice`` or ``assignment:<id>``."""

    kind: str
    assignment_id: int | None = None

    @classmethod
    def parse(cls, value: str | None) -> Target:
        value = (value or "tutor").strip()
        if value in {"tutor", "practice"}:
            return cls(value)
        kind, _sep, raw_id = value.partition(":")
        if kind == "assignment" and raw_id.isdigit():
            return cls("assignment", int(raw_id))
        raise LaunchError(
            "unknown_target",
            _("This link points to %(target)s, which the tutor does not know.") % {"target": value},
        )

    def __str__(self) -> str:
        return f"assignment:{self.assignment_id}" if self.kind == "assignment" else self.kind

    def url(self, course: Course) -> str:
        if self.kind == "practice":
            return reverse("learning:practice", args=[course.pk])
        if self.kind == "assignment":
            if (
                self.assignment_id is None
                or not Assignment.objects.filter(pk=self.assignment_id, course=course).exists()
            ):
                raise LaunchError(
                    "foreign_assignment",
                    _(
                        "This link points to an assignment that is not part of %(course)s "
                        "(was the LMS course copied?). Ask the teacher to place the link again."
                    )
                    % {"course": course},
                    status=404,
                )
            return reverse("grading:assignment", args=[course.pk, self.assignment_id])
        return reverse("conversations:tutor", args=[course.pk])


def line_item_remember(*, context: LtiContext, target: Target, claims: dict[str, Any]) -> None:
    """The gradebook column the platform made for an assignment's resource link."""
    url = (claims.get(AGS_CLAIM) or {}).get("lineitem")
    if target.kind == "assignment" and target.assignment_id is not None and url:
        LtiLineItem.objects.update_or_create(
            context=context, assignment_id=target.assignment_id, defaults={"url": str(url)}
        )


@dataclass
class LaunchResult:
    user: User
    context: LtiContext
    role: str
    target: Target


def launch_accept(*, platform: LtiPlatform, claims: dict[str, Any]) -> LaunchResult:
    """Provision everything a verified launch names, in one transaction."""
    sub = claims.get("sub")
    if not sub:
        raise LaunchError(
            "anonymous_launch",
            _("The LMS launched without a user (no sub); the tutor needs to know who it is."),
        )
    custom = claims.get(CUSTOM_CLAIM) or {}
    target = Target.parse(custom.get("target") if isinstance(custom, dict) else None)
    with transaction.atomic():
        user = user_for(platform=platform, sub=sub, claims=claims)
        context = context_for(
            platform=platform, claims=claims, deployment_id=claims.get(DEPLOYMENT_CLAIM)
        )
        role = course_role(claims.get(ROLES_CLAIM) or [])
        membership_set(user=user, course=context.course, role=role)
        line_item_remember(context=context, target=target, claims=claims)
        LtiIdentity.objects.filter(platform=platform, sub=str(sub)).update(
            last_launch_at=timezone.now()
        )
    return LaunchResult(user=user, context=context, role=role, target=target)
