"""Benchmark course-material ingestion and search.

    .venv/bin/python -m bench.retrieval [--sizes 10000 100000] [--docs 20] [--queries 200]
                                        [--skip-ingestion] [--rebuild-index]

Reports, on synthetic text (nothing here reads the shared evaluation data):

- ingestion throughput: chunks per second through the real pipeline (parse, chunk,
  embed, store) against the encoder the pipeline uses (``ai.embedding.embed_texts``, the
  traced model where it traces) alone on the same chunk texts in one call at the
  pipeline's batch size (``material.services.EMBED_BATCH``), in the same run; the ratio
  should be at least 0.8 (``SentenceTransformer.encode`` alone is shown too);
- for each size: query latency of ``chunks_search`` (hybrid) p50/p95, with the query
  vector given (the database part) and end to end (query embedding included), and the
  recall@10 of its vector ranking (HNSW, ``hnsw.ef_search`` as in production) against an
  exact scan, target at least 0.95.

Chunks for the size runs are written straight into the table: their vectors are mixtures
of a few thousand real embeddings of synthetic sentences plus noise (so neighbours are
as clustered as real text, unlike uniform random vectors), their text is drawn from a
Zipf-distributed vocabulary. It uses a course of its own in the configured database and
deletes it at the end. Numbers depend on the machine: say which when you quote them.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
import uuid

import numpy as np

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from config.embedded import embedded_start  # noqa: E402

embedded_start()

from django.core.files.base import ContentFile  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from pgvector import Vector  # noqa: E402

from ai.embedding import embed_texts, embedding_model  # noqa: E402
from learners.models import Course, Membership, User  # noqa: E402
from material import retrieval  # noqa: E402
from material.models import Chunk, Material  # noqa: E402
from material.services import EMBED_BATCH, material_ingest, material_upload  # noqa: E402

BASE_SENTENCES = 2000


def percentiles(values: list[float]) -> tuple[float, float]:
    ms = np.array(values) * 1000
    return round(float(np.percentile(ms, 50)), 1), round(float(np.percentile(ms, 95)), 1)


class Vocabulary:
    def __init__(self, seed: int = 7, size: int = 20000):
        rng = random.Random(seed)
        syllables = ["ka", "lo", "mi", "ren", "tu", "sa", "vo", "dex", "pri", "on", "ul", "ba"]
        words = set()
        while len(words) < size:
            words.add("".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))))
        self.words = sorted(words)
        weights = 1 / np.arange(1, size + 1) ** 1.05
        self.p = weights / weights.sum()
        # What Generator.choice(size, p=p) computes on every call, once: the same draws
        # (choice is searchsorted of uniform draws on this cdf), 100 times faster.
        self.cdf = self.p.cumsum()
        self.cdf /= self.cdf[-1]
        self.rng = np.random.default_rng(seed)

    def sentence(self, n: int) -> str:
        picked = self.cdf.searchsorted(self.rng.random(n), side="right")
        return " ".join(self.words[i] for i in picked).capitalize() + "."


def bench_ingestion(course, user, vocabulary: Vocabulary, docs: int) -> dict:
    texts = []
    for d in range(docs):
        sections = []
        for s in range(6):
            paragraphs = [
                " ".join(vocabulary.sentence(random.randint(8, 20)) for _ in range(6))
                for _ in range(3)
            ]
            sections.append(f"## Section {s}\n\n" + "\n\n".join(paragraphs))
        texts.append(f"# Document {d}\n\n" + "\n\n".join(sections))
    embed_texts(["warm up the model"])
    started = time.perf_counter()
    for d, text in enumerate(texts):
        material = material_upload(
            course=course, file=ContentFile(text.encode(), name=f"doc-{d}.md"), enqueue=False
        )
        assert material_ingest(material_id=material.pk).status == Material.Status.READY
    pipeline = time.perf_counter() - started
    chunks = list(Chunk.objects.filter(course=course).select_related("material"))
    # The texts the pipeline embedded, rebuilt the way chunking builds them (a header
    # over half the window would have been shortened).
    from material.chunking import SECTION_SEPARATOR, embedded_header

    embedded = [
        embedded_header(
            title=c.material.title,
            section_path=tuple(c.section.split(SECTION_SEPARATOR)) if c.section else (),
        )
        + "\n\n"
        + c.text
        for c in chunks
    ]
    # At the pipeline's batch size: on long chunk texts 16 beats 64 (6.4 against 10.9 s
    # for 64 chunks on this machine), so a baseline at 64 would flatter the pipeline.
    started = time.perf_counter()
    embed_texts(embedded, batch_size=EMBED_BATCH)
    raw = time.perf_counter() - started
    started = time.perf_counter()
    embedding_model().encode(
        embedded, batch_size=EMBED_BATCH, normalize_embeddings=True, show_progress_bar=False
    )
    plain = time.perf_counter() - started
    return {
        "chunks": len(chunks),
        "pipeline_chunks_per_s": round(len(chunks) / pipeline, 1),
        "encode_chunks_per_s": round(len(chunks) / raw, 1),
        "sentence_transformers_encode_chunks_per_s": round(len(chunks) / plain, 1),
        "ratio": round(raw / pipeline, 3),
    }


_HNSW_INDEX = "chunk_embedding_hnsw"
_COPY_COLUMNS = "material_id, course_id, position, text, section, text_hash, embedding, word_count"


def _copy_rows(cursor, material, course, start: int, texts: list[str], vectors) -> None:
    """One batch of chunks in one COPY (the generated tsvector is computed by the table)."""
    with cursor.cursor.copy(
        f"COPY {Chunk._meta.db_table} ({_COPY_COLUMNS}) FROM STDIN"  # noqa: S608
    ) as copy:
        for i, text in enumerate(texts):
            copy.write_row(
                (
                    material.pk,
                    course.pk,
                    start + i,
                    text,
                    "Synthetic",
                    "-",
                    Vector(vectors[i]).to_text(),
                    len(text.split()),
                )
            )


def fill(course, size: int, vocabulary: Vocabulary, base: np.ndarray, rng, *, rebuild=False):
    """``size`` synthetic chunks of ``course``, written with COPY.

    With ``rebuild`` the HNSW index is dropped while they are written and built again
    after, with the same definition (a bulk build is ten times faster than as many
    inserts into the graph; it rebuilds the index over the whole table, so only on a
    database of your own).
    """
    material = Material.objects.create(
        course=course, title="synthetic", original_name="synthetic", status="ready"
    )
    batch = 2000
    with connection.cursor() as cursor:
        definition = None
        if rebuild:
            cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", [_HNSW_INDEX])
            definition = cursor.fetchone()[0]
            cursor.execute(f"DROP INDEX {_HNSW_INDEX}")
        try:
            for start in range(0, size, batch):
                n = min(batch, size - start)
                picks = rng.integers(0, len(base), size=(n, 3))
                weights = rng.dirichlet([1, 1, 1], size=n)[:, :, None]
                vectors = (base[picks] * weights).sum(axis=1) + rng.normal(
                    0, 0.02, (n, base.shape[1])
                )
                vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
                texts = [
                    " ".join(vocabulary.sentence(random.randint(8, 20)) for _ in range(7))
                    for _ in range(n)
                ]
                _copy_rows(cursor, material, course, start, texts, vectors.astype(np.float32))
        finally:
            if definition is not None:
                cursor.execute("SET maintenance_work_mem = '1GB'")
                cursor.execute(definition)
                cursor.execute("RESET maintenance_work_mem")
        cursor.execute(f"ANALYZE {Chunk._meta.db_table}")
    # As ingestion does after writing chunks (material.services).
    retrieval.search_index_settle()


def vector_ids(course, vector: str, *, exact: bool) -> list[int]:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT set_config('hnsw.ef_search', %s, true)", [str(retrieval.EF_SEARCH)])
        if exact:
            cursor.execute("SET LOCAL enable_indexscan = off")
            cursor.execute("SET LOCAL enable_bitmapscan = off")
        return [
            row[0]
            for row in retrieval._vector_ranking(
                cursor, course_id=course.pk, vector=vector, limit=10
            )
        ]


def bench_size(
    course, user, size: int, vocabulary, base, queries: int, rng, *, rebuild=False
) -> dict:
    started = time.perf_counter()
    fill(course, size, vocabulary, base, rng, rebuild=rebuild)
    fill_seconds = time.perf_counter() - started
    texts = [vocabulary.sentence(random.randint(5, 12)) for _ in range(queries)]
    vectors = embed_texts(texts)
    given, end_to_end, recalls = [], [], []
    for text, vector in zip(texts, vectors, strict=True):
        began = time.perf_counter()
        retrieval.chunks_search(course=course, user=user, query=text, k=10, query_vector=vector)
        given.append(time.perf_counter() - began)
    for text in texts[: max(1, queries // 4)]:
        began = time.perf_counter()
        retrieval.chunks_search(course=course, user=user, query=text, k=10)
        end_to_end.append(time.perf_counter() - began)
    for vector in vectors:
        literal = Vector(vector).to_text()
        approximate = vector_ids(course, literal, exact=False)
        exact = vector_ids(course, literal, exact=True)
        recalls.append(len(set(approximate) & set(exact)) / max(1, len(exact)))
    with connection.cursor() as cursor:
        cursor.execute(
            f"EXPLAIN SELECT id FROM {Chunk._meta.db_table} WHERE course_id = %s "  # noqa: S608
            "ORDER BY embedding <=> %s::vector LIMIT 10",
            [course.pk, Vector(vectors[0]).to_text()],
        )
        plan = " ".join(row[0] for row in cursor.fetchall())
    return {
        "chunks": size,
        "fill_seconds": round(fill_seconds, 1),
        "search_ms_p50_p95": percentiles(given),
        "end_to_end_ms_p50_p95": percentiles(end_to_end),
        "hnsw_used": "chunk_embedding_hnsw" in plan,
        "vector_recall_at_10": round(float(np.mean(recalls)), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--docs", type=int, default=20)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--skip-ingestion", action="store_true")
    parser.add_argument(
        "--rebuild-index",
        action="store_true",
        help="drop the HNSW index while the synthetic chunks are written and build it "
        "again after (much faster; rebuilds it over the whole table: a database of your own)",
    )
    args = parser.parse_args()
    random.seed(7)
    rng = np.random.default_rng(7)
    vocabulary = Vocabulary()
    tag = uuid.uuid4().hex[:8]
    user = User.objects.create_user(username=f"bench-retrieval-{tag}")
    report: dict = {}
    courses = []
    try:
        if not args.skip_ingestion:
            course = Course.objects.create(title=f"bench-retrieval-ingest-{tag}")
            courses.append(course)
            report["ingestion"] = bench_ingestion(course, user, vocabulary, args.docs)
            print(json.dumps({"ingestion": report["ingestion"]}), flush=True)
        base = embed_texts(
            [vocabulary.sentence(random.randint(6, 16)) for _ in range(BASE_SENTENCES)]
        )
        for size in args.sizes:
            course = Course.objects.create(title=f"bench-retrieval-{size}-{tag}")
            courses.append(course)
            Membership.objects.create(user=user, course=course, role="teacher")
            report[str(size)] = bench_size(
                course, user, size, vocabulary, base, args.queries, rng, rebuild=args.rebuild_index
            )
            print(json.dumps({str(size): report[str(size)]}), flush=True)
    finally:
        for course in courses:
            for material in Material.objects.filter(course=course):
                if material.file:
                    material.file.delete(save=False)
            course.delete()
        user.delete()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
