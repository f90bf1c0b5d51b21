"""Read use cases about courses and roles; every other app asks these who may do what."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import OuterRef, Subquery
from django.http import Http404
from django.shortcuts import get_object_or_404

from learners.models import Course, Membership

if TYPE_CHECKING:
    from learners.models import User


# The role ``course_for_member`` read with the course, and whose it is: pages ask for the
# role right after opening the course, and then need no query of their own.
_ROLE_READ = "_role_read_for_user_id"
_ROLE = "_role_read"


def _roles_of(user: User):
    return Membership.objects.filter(user=user).order_by("pk").values_list("role", flat=True)


def membership_role(*, user: User, course: Course) -> str | None:
    """The user's role in the course ("student", "teacher") or None."""
    if not user.is_authenticated:
        return None
    if getattr(course, _ROLE_READ, None) == user.pk:
        return getattr(course, _ROLE)
    return _roles_of(user).filter(course=course).first()


def course_for_member(*, user: User, course_id: int) -> Course:
    """The course if the user may open it (member or staff); 404 otherwise, so strangers
    cannot even learn that the course exists. The user's role in it comes in the same
    query (``membership_role`` then asks nothing)."""
    courses = Course.objects.visible_to(user)
    if not user.is_authenticated:
        return get_object_or_404(courses, pk=course_id)
    role = Subquery(_roles_of(user).filter(course=OuterRef("pk"))[:1])
    course = get_object_or_404(courses.annotate(**{_ROLE: role}), pk=course_id)
    setattr(course, _ROLE_READ, user.pk)
    return course


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
