"""Demo people and course: a teacher, students and an admin (the material is imported by
the ``load_demo`` command in ``tutor``).

Idempotent: running it again leaves one of everything and resets the demo passwords so
the printed logins always work.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from learners.models import Course, Membership, User

DEMO_COURSE_SLUG = "demo-biology"


@dataclass(frozen=True)
class DemoLogin:
    username: str
    password: str
    role: str


DEMO_LOGINS = (
    DemoLogin("demo-admin", "demo-admin-pass", "admin"),
    DemoLogin("demo-teacher", "demo-teacher-pass", "teacher"),
    DemoLogin("demo-student", "demo-student-pass", "student"),
    DemoLogin("demo-student2", "demo-student2-pass", "student"),
)

_NAMES = {
    "demo-admin": "Avery Admin",
    "demo-teacher": "Ms. Tanaka",
    "demo-student": "Sam Student",
    "demo-student2": "Riley Student",
}


@transaction.atomic
def demo_load() -> Course:
    course, _ = Course.objects.update_or_create(
        slug=DEMO_COURSE_SLUG,
        defaults={
            "title": "Energy in Living Things",
            "description": "Photosynthesis, cellular respiration and how energy flows "
            "through ecosystems — a short demo course.",
        },
    )
    for login in DEMO_LOGINS:
        user, _ = User.objects.get_or_create(username=login.username)
        user.display_name = _NAMES[login.username]
        user.is_staff = user.is_superuser = login.role == "admin"
        user.set_password(login.password)
        user.save()
        if login.role in (Membership.Role.STUDENT, Membership.Role.TEACHER):
            Membership.objects.update_or_create(
                user=user, course=course, defaults={"role": login.role}
            )
    return course
