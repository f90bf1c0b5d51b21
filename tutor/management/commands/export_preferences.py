"""Write rated tutor replies as JSON Lines preference records, for fine-tuning."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from config.schema import schema_migrate_pending
from learners.models import Course
from tutor.conversation_selectors import preference_records


class Command(BaseCommand):
    help = (
        "Write one JSON object per rated tutor reply (prompt turns, reply, rating +1/-1, "
        "comment, model, prompt version); no learner identity is included."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--output", "-o", default="-", help="file to write; - for stdout")
        parser.add_argument("--course", type=int, help="only this course's id")

    def handle(self, *args, output: str, course: int | None, **options) -> None:
        schema_migrate_pending(self)
        selected = None
        if course is not None:
            selected = Course.objects.filter(pk=course).first()
            if selected is None:
                raise CommandError(f"No course with id {course}.")
        with contextlib.ExitStack() as stack:
            stream = (
                sys.stdout
                if output == "-"
                else stack.enter_context(Path(output).open("w", encoding="utf-8"))
            )
            count = 0
            for record in preference_records(course=selected):
                stream.write(json.dumps(record, ensure_ascii=False) + "\n")
                count += 1
        self.stderr.write(f"Wrote {count} preference records.")
