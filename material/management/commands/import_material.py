"""``manage.py import_material COURSE PATH...``: files or folders become course material."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from config.schema import schema_migrate_pending
from learners.models import Course
from material.models import Material
from material.services import material_import_path, material_ingest


class Command(BaseCommand):
    help = (
        "Import files (or every file in folders) as material of a course, given by id or "
        "exact title. Files imported before under the same name are replaced."
    )

    def add_arguments(self, parser):
        parser.add_argument("course", help="course id or exact title")
        parser.add_argument("paths", nargs="+", type=Path)
        parser.add_argument(
            "--sync",
            action="store_true",
            help="ingest in this process instead of queueing for the cpu worker",
        )

    def handle(self, *args, course, paths, sync, **options):
        schema_migrate_pending(self)
        lookup = {"pk": int(course)} if course.isdigit() else {"title": course}
        found = Course.objects.filter(**lookup).first()
        if found is None:
            raise CommandError(f"No course {course!r}.")
        for path in paths:
            if not path.exists():
                raise CommandError(f"{path} does not exist.")
        failed = 0
        for path in paths:
            for material in material_import_path(course=found, path=path, enqueue=not sync):
                if sync and material.status == Material.Status.QUEUED:
                    material = material_ingest(material_id=material.pk) or material
                line = f"{material.original_name}: {material.get_status_display()}"
                if material.status == Material.Status.FAILED:
                    failed += 1
                    self.stderr.write(f"{line} - {material.failure_reason}")
                else:
                    self.stdout.write(line)
        if failed:
            raise CommandError(f"{failed} file(s) could not be imported.")
