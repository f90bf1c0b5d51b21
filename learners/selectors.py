"""Read use cases about courses and roles; every other app asks these who may do what."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.http import Http404
from django.shortcuts import get_object_or_404

from learners.models import Course, Membership

if TYPE_CHECKING:
    from learners.models import User


def membership_role(*, user: User, course: Course) -> str | None:
    """The user's role in the course ("student", "teacher") or None."""
    if not user.is_authenticated:
        return None
    return (
        Membership.objects.filter(user=user, course=course).values_list("role", flat=True).first()
    )


def course_for_member(*, user: User, course_id: int) -> Course:
    """The course if the user may open it (member or staff); 404 otherwise, so strangers
    cannot even learn that the course exists."""
    return get_object_or_404(Course.objects.visible_to(user), pk=course_id)


def course_for_teacher(*, user: User, course_id: int) -> Course:
    """The course if the user teaches it (or is staff); 404 otherwise."""
    course = course_for_member(user=user, course_id=course_id)
    if user.is_staff or membership_role(user=user, course=course) == Membership.Role.TEACHER:
        return course
    raise Http404("Only the course's teachers may do this.")


def user_can_teach(*, user: User, course: Course) -> bool:
    return user.is_authenticated and (
        user.is_staff or membership_role(user=user, course=course) == Membership.Role.TEACHER
    )


def home_courses(*, user: User) -> dict[str, list[Course]]:
    """What the home page lists: courses the user studies and courses the user teaches."""
    rows = Membership.objects.filter(user=user).select_related("course").order_by("course__title")
    courses: dict[str, list[Course]] = {"studying": [], "teaching": []}
    for membership in rows:
        key = "teaching" if membership.role == Membership.Role.TEACHER else "studying"
        courses[key].append(membership.course)
    return courses
