from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand

from config.schema import schema_migrate_pending
from learners.demo import DEMO_LOGINS, demo_load
from material.models import Material
from material.services import material_import_path, material_ingest

DEMO_MATERIAL_DIR = settings.BASE_DIR / "material" / "demo_material"


class Command(BaseCommand):
    help = "Create (or refresh) the demo course, its material and demo logins. Idempotent."

    def handle(self, *args, **options) -> None:
        schema_migrate_pending(self)
        course = demo_load()
        # Ingested here rather than queued, so the demo tutor has material the moment the
        # page opens; unchanged material re-embeds nothing on later runs.
        materials = material_import_path(course=course, path=DEMO_MATERIAL_DIR, enqueue=False)
        for material in materials:
            material_ingest(material_id=material.pk)
        ready = Material.objects.filter(course=course, status=Material.Status.READY).count()
        self.stdout.write(
            self.style.SUCCESS(f"Demo course ready: {course.title} ({ready} materials ready)")
        )
        self.stdout.write(f"Open {settings.SITE_URL}/ and log in as:")
        for login in DEMO_LOGINS:
            self.stdout.write(f"  {login.role:<8} {login.username:<14} password: {login.password}")
