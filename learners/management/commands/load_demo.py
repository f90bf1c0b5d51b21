from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand

from learners.demo import DEMO_LOGINS, demo_load


class Command(BaseCommand):
    help = "Create (or refresh) the demo course, its material and demo logins. Idempotent."

    def handle(self, *args, **options) -> None:
        course = demo_load()
        self.stdout.write(self.style.SUCCESS(f"Demo course ready: {course.title}"))
        self.stdout.write(f"Open {settings.SITE_URL}/ and log in as:")
        for login in DEMO_LOGINS:
            self.stdout.write(f"  {login.role:<8} {login.username:<14} password: {login.password}")
