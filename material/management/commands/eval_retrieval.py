"""``manage.py eval_retrieval DATASET_DIR``: recall of ``chunks_search`` on a question set.

The dataset holds ``documents/`` (the material) and ``questions.jsonl`` (``question``,
``document``, ``answers``). The documents are ingested into a temporary course through
the real pipeline (parse, chunk, embed, store); every question goes through
``chunks_search``; a question is a hit at k when one of the top k chunks comes from its
document and contains one of its answers (case-insensitive). The course is removed after.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import numpy as np
from django.core.management.base import BaseCommand, CommandError

from ai.embedding import embed_texts
from config.schema import schema_migrate_pending
from learners.models import Course, Membership, User
from material.models import Material
from material.retrieval import MODES, chunks_search
from material.services import material_import_path, material_ingest


class Command(BaseCommand):
    help = "Measure recall@1/5/10, MRR@10 and query latency of chunks_search on a dataset."

    def add_arguments(self, parser):
        parser.add_argument("dataset", type=Path)
        parser.add_argument("--k", type=int, default=10)
        parser.add_argument(
            "--mode",
            choices=MODES,
            nargs="+",
            default=["hybrid"],
            help="one or more retrieval modes, measured on the same ingested course",
        )
        parser.add_argument("--limit", type=int, default=0, help="only the first N questions")
        parser.add_argument(
            "--latency-sample",
            type=int,
            default=300,
            help="questions timed end to end, query embedding included (the recall run "
            "embeds all questions in one batch first)",
        )
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, dataset: Path, k: int, mode: list[str], limit: int, **options):
        self.latency_sample = options["latency_sample"]
        documents, questions_path = dataset / "documents", dataset / "questions.jsonl"
        if not documents.is_dir() or not questions_path.is_file():
            raise CommandError(f"{dataset} needs documents/ and questions.jsonl")
        questions = [json.loads(line) for line in questions_path.open() if line.strip()]
        if limit:
            questions = questions[:limit]
        schema_migrate_pending(self)
        tag = uuid.uuid4().hex[:8]
        course = Course.objects.create(title=f"eval-retrieval-{tag}")
        user = User.objects.create_user(username=f"eval-retrieval-{tag}")
        Membership.objects.create(user=user, course=course, role=Membership.Role.TEACHER)
        try:
            reports = self._run(course, user, documents, questions, k=k, modes=mode)
        finally:
            for material in Material.objects.filter(course=course):
                if material.file:
                    material.file.delete(save=False)
            course.delete()
            user.delete()
        if options["json"]:
            self.stdout.write(json.dumps(reports if len(reports) > 1 else reports[0]))
            return
        for report in reports:
            self.stdout.write(", ".join(f"{key}: {value}" for key, value in report.items()))

    def _run(
        self, course: Course, user: User, documents: Path, questions, *, k: int, modes
    ) -> list[dict]:
        started = time.perf_counter()
        materials = material_import_path(course=course, path=documents, enqueue=False)
        names = {}
        for material in materials:
            material = material_ingest(material_id=material.pk) or material
            if material.status != Material.Status.READY:
                raise CommandError(f"{material.original_name}: {material.failure_reason}")
            names[material.pk] = material.original_name
        ingest_seconds = time.perf_counter() - started
        vectors = embed_texts([q["question"] for q in questions])
        return [
            self._measure(course, user, names, questions, vectors, k=k, mode=mode)
            | {"ingest_seconds": round(ingest_seconds, 1)}
            for mode in modes
        ]

    def _measure(
        self, course: Course, user: User, names, questions, vectors, *, k: int, mode: str
    ) -> dict:
        ks = sorted({1, 5, min(10, k), k})
        hits = dict.fromkeys(ks, 0)
        reciprocal = 0.0
        latencies = []
        for question, vector in zip(questions, vectors, strict=True):
            answers = [a.lower() for a in question["answers"]]
            began = time.perf_counter()
            results = chunks_search(
                course=course,
                user=user,
                query=question["question"],
                k=k,
                mode=mode,
                query_vector=vector,
            )
            latencies.append(time.perf_counter() - began)
            rank = next(
                (
                    i
                    for i, r in enumerate(results)
                    if names[r.material_id] == question["document"]
                    and any(a in r.text.lower() for a in answers)
                ),
                None,
            )
            if rank is None:
                continue
            if rank < 10:
                reciprocal += 1 / (rank + 1)
            for cutoff in ks:
                hits[cutoff] += rank < cutoff
        count = max(1, len(questions))
        milliseconds = np.array(latencies or [0.0]) * 1000
        end_to_end = []
        for question in questions[: self.latency_sample]:
            began = time.perf_counter()
            chunks_search(course=course, user=user, query=question["question"], k=k, mode=mode)
            end_to_end.append(time.perf_counter() - began)
        end_to_end_ms = np.array(end_to_end or [0.0]) * 1000
        return {
            "mode": mode,
            "documents": len(names),
            "chunks": course_chunks(course),
            "questions": len(questions),
            **{f"recall@{cutoff}": round(hits[cutoff] / count, 4) for cutoff in ks},
            "mrr@10": round(reciprocal / count, 4),
            # The database part: every question, its vector given.
            "search_ms_p50": round(float(np.percentile(milliseconds, 50)), 1),
            "search_ms_p95": round(float(np.percentile(milliseconds, 95)), 1),
            # The whole selector, query embedding included, on the first questions.
            "latency_ms_p50": round(float(np.percentile(end_to_end_ms, 50)), 1),
            "latency_ms_p95": round(float(np.percentile(end_to_end_ms, 95)), 1),
            "latency_questions": len(end_to_end),
        }


def course_chunks(course: Course) -> int:
    from material.models import Chunk

    return Chunk.objects.filter(course=course).count()
