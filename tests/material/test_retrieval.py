from __future__ import annotations

import secrets

import pytest
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.core.files.base import ContentFile
from django.db import connection
from django.test.utils import CaptureQueriesContext

from material import retrieval
from material.models import Chunk, Material
from material.retrieval import chunks_search, fuse
from material.services import material_ingest, material_upload
from tests.material.material_files import MARKDOWN, VOLCANO, media_root  # noqa: F401

pytestmark = pytest.mark.usefixtures("media_root")


def ingest(course, name: str, text: str):
    material = material_upload(course=course, file=ContentFile(text.encode(), name=name))
    return material_ingest(material_id=material.pk)


@pytest.fixture
def material(course):
    ingest(course, "cells.md", MARKDOWN)
    return ingest(course, "volcano.md", VOLCANO)


@pytest.mark.parametrize("mode", ["hybrid", "vector", "keyword"])
def test_each_mode_finds_the_passage_that_answers(material, course, student, mode):
    results = chunks_search(
        course=course, user=student, query="Where is the energy in glucose released?", mode=mode
    )
    assert "mitochondria" in results[0].text
    assert results[0].title == "Cell Energy"
    assert results[0].section == "Cell Energy › Respiration"
    assert results[0].url.endswith(f"#chunk-{results[0].chunk_id}")


def test_search_never_crosses_courses(material, course, other_course, other_student):
    ingest(other_course, "other.md", "# Other\n\nGlucose is a sugar in the other course.")
    results = chunks_search(course=other_course, user=other_student, query="glucose", k=10)
    assert results and all("other course" in r.text for r in results)


def test_strangers_may_not_search(material, course, other_student):
    with pytest.raises(PermissionDenied):
        chunks_search(course=course, user=other_student, query="glucose")


@pytest.mark.parametrize(
    "query",
    [
        "",
        "   ",
        "the of and",  # nothing but stop words
        "glucose & | ! ( ) <-> :* ' \" \\ ;--",
        "DROP TABLE tutor_chunk; -- ' OR 1=1",
        "nul\x00byte glucose",
        "photosynthesis " * 5000,
        "🌱 ∑ 光合作用",
    ],
)
def test_odd_queries_do_not_error(material, course, student, query):
    results = chunks_search(course=course, user=student, query=query, k=5, highlight=True)
    assert len(results) <= 5


def test_an_operator_query_still_matches_its_words(material, course, student):
    results = chunks_search(
        course=course, user=student, query="!chlorophyll & (|", k=1, mode="keyword"
    )
    assert "chlorophyll" in results[0].text


def test_highlights_mark_matches_and_escape_the_text(course, student):
    ingest(course, "xss.md", "# Safety\n\nMagma flows if 3 < 5 & 7 > 6.")
    [result] = chunks_search(course=course, user=student, query="magma", k=1, highlight=True)
    assert "<mark>Magma</mark>" in result.headline
    assert "&lt; 5 &amp; 7 &gt; 6" in result.headline
    assert "<" not in result.headline.replace("<mark>", "").replace("</mark>", "")


def test_fusion_weighs_normalised_scores_not_ranks():
    # Chunk 1 leads BM25 by far and is second by cosine; 2 and 3 edge it on cosine.
    rows = [(1, 20.0, 0.70), (2, 2.0, 0.72), (3, 1.0, 0.71), (4, 0.0, 0.20)]
    assert [chunk_id for chunk_id, _ in fuse(rows)] == [1, 2, 3, 4]


# --- both halves bounded, statistics cached ------------------------------------------------


def test_the_hnsw_path_finds_what_the_exact_scan_finds(material, course, student, monkeypatch):
    from material import retrieval

    query = "Where is the energy in glucose released?"
    exact = chunks_search(course=course, user=student, query=query, k=3, mode="vector")
    monkeypatch.setattr(retrieval, "EXACT_SCAN_MAX", 0)  # the index even for a small course
    retrieval.course_stats_forget(course_id=course.pk)
    indexed = chunks_search(course=course, user=student, query=query, k=3, mode="vector")
    assert [r.chunk_id for r in indexed] == [r.chunk_id for r in exact]
    hybrid = chunks_search(course=course, user=student, query=query, k=1)
    assert "mitochondria" in hybrid[0].text


def test_the_vector_plan_widens_the_search_for_a_small_share_of_the_table():
    from material.retrieval import (
        EF_SEARCH,
        EF_SEARCH_MAX,
        EXACT_SCAN_MAX,
        CourseStats,
        _vector_plan,
    )

    def plan(chunks, table, iterative=False):
        stats = CourseStats(
            chunks=chunks, avgdl=50.0, table_chunks=table, iterative_scan=iterative, token="t"
        )
        return _vector_plan(stats)[1]

    assert plan(EXACT_SCAN_MAX, 10**6) is None  # small: exact
    assert plan(100_000, 100_000) == EF_SEARCH  # the whole table
    assert plan(100_000, 200_000) == 2 * EF_SEARCH  # half of it: twice as wide
    assert plan(100_000, 10**8) is None  # too small a share for any breadth: exact
    assert plan(100_000, 10**8, iterative=True) == EF_SEARCH  # pgvector 0.8 iterates
    assert plan(100_000, 100_000 * EF_SEARCH_MAX // EF_SEARCH) == EF_SEARCH_MAX


def test_new_material_is_found_at_once_though_statistics_are_cached(course, student):
    ingest(course, "cells.md", MARKDOWN)
    assert not chunks_search(course=course, user=student, query="basalt", mode="keyword")
    ingest(course, "volcano.md", VOLCANO)
    # "basalt" was counted in no chunk before: that count must not be reused.
    results = chunks_search(course=course, user=student, query="basalt", k=1, mode="keyword")
    assert results and "basalt" in results[0].text
    from django.db import connection

    from material.models import Chunk
    from material.retrieval import _course_stats

    with connection.cursor() as cursor:
        stats = _course_stats(cursor, course_id=course.pk)
    assert stats.chunks == Chunk.objects.filter(course=course).count()


def test_a_search_runs_a_bounded_number_of_queries(material, course, student):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    query = "Where is the energy in glucose released?"
    chunks_search(course=course, user=student, query=query)  # statistics cached
    with CaptureQueriesContext(connection) as queries:
        chunks_search(course=course, user=student, query=query)
    statements = [
        q["sql"]
        for q in queries.captured_queries
        if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))
    ]
    # membership, lexemes, the keyword half, the vector half with the pool's scores, the
    # results
    assert len(statements) == 5, statements


def test_bm25_reads_term_frequencies_from_tsvector_text_with_quotes_and_backslashes(db):
    lexemes = ["it's", "back\\slash", "once"]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT ts_filter(setweight(%s::tsvector, 'A', %s::text[]), '{a}')::text",
            [r"'it''s':1,4,9 'back\\slash':2 'once':3 'other':5,6", lexemes],
        )
        (terms,) = cursor.fetchone()
    idf = {"it's": 1.0, "back\\slash": 10.0, "once": 100.0}
    k1 = retrieval.BM25_K1
    # avgdl equal to the chunk's length: each term's denominator is tf + k1.
    expected = sum(weight * tf * (k1 + 1) / (tf + k1) for weight, tf in [(1, 3), (10, 1), (100, 1)])
    assert retrieval._bm25(terms, 7, retrieval._bm25_weights(idf), 7.0) == pytest.approx(expected)
    assert retrieval._bm25(terms, 7, retrieval._bm25_weights({"other": 5.0}), 7.0) == 0.0


def test_search_works_without_the_cache(material, course, student, settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
        }
    }
    results = chunks_search(course=course, user=student, query="mitochondria glucose", k=1)
    assert "mitochondria" in results[0].text


def test_a_common_word_is_estimated_from_statistics_and_a_rare_one_counted(course, monkeypatch):
    material = Material.objects.create(course=course, title="Minerals", original_name="m.md")
    texts = [f"Zircon crystal {i} grows." for i in range(30)] + ["Obsidian is glass."]
    Chunk.objects.bulk_create(
        Chunk(
            material=material,
            course=course,
            position=i,
            text=text,
            text_hash=str(i),
            embedding=[0.1] * settings.EMBEDDING_DIMENSIONS,
            word_count=len(text.split()),
        )
        for i, text in enumerate(texts)
    )
    monkeypatch.setattr(retrieval, "DF_COUNT_MAX", 5)
    # Twice the chunks the table holds: an estimate (share x chunks) tells itself apart
    # from a count.
    stats = retrieval.CourseStats(
        chunks=62, avgdl=4.0, table_chunks=62, iterative_scan=False, token=secrets.token_hex(8)
    )
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Chunk._meta.db_table}")
    with CaptureQueriesContext(connection) as queries, connection.cursor() as cursor:
        frequencies = retrieval._document_frequencies(
            cursor, stats=stats, course_id=course.pk, lexemes=["zircon", "obsidian"]
        )
    assert frequencies == {"zircon": 60, "obsidian": 1}
    counted = [q["sql"] for q in queries.captured_queries if "count(*)" in q["sql"]]
    assert len(counted) == 1 and "obsidian" in counted[0] and "zircon" not in counted[0]
    # ANALYZE's shares are read once for the course's statistics, then reused.
    with CaptureQueriesContext(connection) as queries, connection.cursor() as cursor:
        again = retrieval._document_frequencies(
            cursor, stats=stats, course_id=course.pk, lexemes=["zircon"]
        )
    assert again == {"zircon": 60}
    assert not any("pg_stats" in q["sql"] for q in queries.captured_queries)


def test_ingestion_leaves_no_pending_entries_in_the_keyword_index(course):
    # Entries waiting in the GIN index's pending list are read whole by every search.
    ingest(course, "volcano.md", VOLCANO)
    with connection.cursor() as cursor:
        cursor.execute("SELECT gin_clean_pending_list('chunk_search_vector_gin'::regclass)")
        assert cursor.fetchone()[0] == 0  # nothing left to merge
