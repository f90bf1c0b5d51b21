"""Search a course's material: the one selector that retrieves chunks.

Hybrid retrieval, all in PostgreSQL:

1. Keyword candidates: chunks whose tsvector matches any of the query's lexemes (GIN
   index), ranked by Okapi BM25 computed here from the course's own statistics: document
   frequencies counted through the GIN index, chunk lengths stored on the chunk, term
   frequencies read from the tsvector's positions. (``ts_rank`` is not BM25: it has no
   inverse document frequency, and BM25 ranks better on our evaluation.)
2. Vector candidates: nearest chunks by cosine distance (HNSW index, ``vector_cosine_ops``).
3. Fusion: over the union of both candidate pools, BM25 divided by the pool's best BM25
   plus cosine min-max scaled over the pool, weighted equally. Plain reciprocal-rank
   fusion discards how far ahead the best match is and loses precision at rank 1.

On SQuAD dev (24 articles, 1,214 chunks, 5,696 questions; ``manage.py eval_retrieval
DATASET --mode hybrid vector keyword``) recall@1 / @5 / @10 were: hybrid 0.839 / 0.970 /
0.984, keyword (this BM25) 0.811 / 0.946 / 0.967, vector 0.661 / 0.884 / 0.929. In a
prototype on the same chunks plain RRF (k=60) reached only 0.771 / 0.955, and keyword
weights 0.6-0.8 scored below 0.5 on recall@1 (0.836, 0.831, 0.827).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from django.core.exceptions import PermissionDenied
from django.db import connection, transaction
from django.urls import reverse
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from tutor.models import SEARCH_CONFIG

MODES = ("hybrid", "vector", "keyword")
K_MAX = 50
QUERY_MAX_CHARS = 2000
QUERY_MAX_TERMS = 64
# Candidates taken from each retriever before fusion.
POOL = 50
# Most rows the keyword candidates' BM25 is computed for (see _query_terms).
MATCH_BUDGET = 2000
# HNSW search breadth; must be at least POOL for the index to return POOL rows.
EF_SEARCH = 100
BM25_K1 = 1.2
BM25_B = 0.75
KEYWORD_WEIGHT = 0.5
# Markers ts_headline puts around matches; the text is escaped before they become <mark>.
_START, _STOP = "\x02", "\x03"


@dataclass(frozen=True)
class SearchResult:
    chunk_id: int
    material_id: int
    title: str
    section: str
    page: int | None
    position: int
    text: str
    score: float
    url: str
    headline: SafeString  # an excerpt, HTML-escaped, with <mark> around the matched words

    @property
    def material_title(self) -> str:
        return self.title


def _clean(query: str) -> str:
    # PostgreSQL text cannot hold NUL; the rest of any string is safe as a bound parameter.
    return (query or "").replace("\x00", " ")[:QUERY_MAX_CHARS].strip()


def _tsquery_literal(lexeme: str) -> str:
    return "'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'"


def _query_terms(cursor, *, course_id: int, query: str) -> tuple[dict[str, float], str]:
    """The query's lexemes with their BM25 idf in the course, and a tsquery matching any."""
    cursor.execute(
        "SELECT lexeme FROM unnest(to_tsvector(%s::regconfig, %s)) LIMIT %s",
        [SEARCH_CONFIG, query, QUERY_MAX_TERMS],
    )
    lexemes = [row[0] for row in cursor.fetchall()]
    if not lexemes:
        return {}, ""
    literals = [_tsquery_literal(lexeme) for lexeme in lexemes]
    cursor.execute(
        """
        SELECT t.lexeme,
               (SELECT count(*) FROM tutor_chunk c
                 WHERE c.course_id = %(course)s AND c.search_vector @@ t.literal::tsquery)
          FROM unnest(%(lexemes)s::text[], %(literals)s::text[]) AS t(lexeme, literal)
        """,
        {"course": course_id, "lexemes": lexemes, "literals": literals},
    )
    frequencies = {lexeme: df for lexeme, df in cursor.fetchall() if df}
    if not frequencies:
        return {}, ""
    cursor.execute("SELECT count(*) FROM tutor_chunk WHERE course_id = %s", [course_id])
    total = cursor.fetchone()[0]
    idf = {
        lexeme: math.log(1 + (total - df + 0.5) / (df + 0.5)) for lexeme, df in frequencies.items()
    }
    # Candidates come from the rarest terms, as many as keep the matched rows under
    # MATCH_BUDGET (at least one term): BM25 reads every matched row's tsvector, and a
    # chunk that shares only the commonest words with the query rarely ranks anyway.
    # Every term still counts in the score.
    matching, rows = [], 0
    for lexeme, df in sorted(frequencies.items(), key=lambda item: (item[1], item[0])):
        if matching and rows + df > MATCH_BUDGET:
            break
        matching.append(lexeme)
        rows += df
    tsquery = " | ".join(_tsquery_literal(lexeme) for lexeme in matching)
    return idf, tsquery


# The CTEs both BM25 queries start with: the query terms with their idf, and the course's
# average chunk length. ``_BM25`` is the score of one chunk ``c``; it reads the term
# frequencies from the tsvector's position lists.
_BM25_WITH = """
    WITH terms AS (
        SELECT * FROM unnest(%(lexemes)s::text[], %(idfs)s::float8[]) AS t(lexeme, idf)
    ),
    stats AS (
        SELECT greatest(avg(word_count), 1)::float8 AS avgdl
          FROM tutor_chunk WHERE course_id = %(course)s
    )
"""
_BM25 = """
    coalesce((
        SELECT sum(t.idf * tf.n * (%(k1)s + 1)
                   / (tf.n + %(k1)s * (1 - %(b)s + %(b)s * c.word_count / s.avgdl)))
          FROM (SELECT u.lexeme, array_length(u.positions, 1) AS n
                  FROM unnest(c.search_vector) AS u) AS tf
          JOIN terms AS t USING (lexeme)
    ), 0)
"""
_KEYWORD_SQL = (
    _BM25_WITH  # noqa: S608 - joins module constants; every value is a bound parameter
    + "SELECT c.id, "
    + _BM25
    + """ AS bm25
      FROM tutor_chunk AS c, stats AS s
     WHERE c.course_id = %(course)s AND c.search_vector @@ %(tsquery)s::tsquery
     ORDER BY bm25 DESC, c.id
     LIMIT %(limit)s
    """
)
_POOL_SQL = (
    _BM25_WITH  # noqa: S608 - joins module constants; every value is a bound parameter
    + "SELECT c.id, "
    + _BM25
    + """ AS bm25, 1 - (c.embedding <=> %(vector)s::vector) AS cosine
      FROM tutor_chunk AS c, stats AS s
     WHERE c.id = ANY(%(ids)s) AND c.course_id = %(course)s
    """
)
# One excerpt of 20 to 45 words around the best match (fragment mode cuts too short).
_HEADLINE_OPTIONS = f"StartSel={_START}, StopSel={_STOP}, MaxWords=45, MinWords=20"


def _bm25_params(idf: dict[str, float]) -> dict:
    return {"lexemes": list(idf), "idfs": list(idf.values()), "k1": BM25_K1, "b": BM25_B}


def _keyword_ranking(cursor, *, course_id: int, idf: dict[str, float], tsquery: str, limit: int):
    cursor.execute(
        _KEYWORD_SQL,
        {
            **_bm25_params(idf),
            "course": course_id,
            "tsquery": tsquery,
            "limit": limit,
        },
    )
    return cursor.fetchall()


def _vector_ranking(cursor, *, course_id: int, vector: str, limit: int):
    cursor.execute(
        """
        SELECT id, 1 - (embedding <=> %(vector)s::vector) AS cosine
          FROM tutor_chunk
         WHERE course_id = %(course)s
         ORDER BY embedding <=> %(vector)s::vector
         LIMIT %(limit)s
        """,
        {"course": course_id, "vector": vector, "limit": limit},
    )
    return cursor.fetchall()


def _pool_scores(cursor, *, course_id: int, ids: Sequence[int], idf, vector: str):
    cursor.execute(
        _POOL_SQL,
        {
            **_bm25_params(idf),
            "course": course_id,
            "vector": vector,
            "ids": list(ids),
        },
    )
    return cursor.fetchall()


def fuse(rows: Sequence[tuple[int, float, float]], *, keyword_weight: float = KEYWORD_WEIGHT):
    """(id, bm25, cosine) rows ranked by the weighted sum of their normalised scores."""
    if not rows:
        return []
    best_bm25 = max(row[1] for row in rows) or 1.0
    low = min(row[2] for row in rows)
    spread = (max(row[2] for row in rows) - low) or 1.0
    scored = [
        (
            chunk_id,
            keyword_weight * bm25 / best_bm25 + (1 - keyword_weight) * (cosine - low) / spread,
        )
        for chunk_id, bm25, cosine in rows
    ]
    return sorted(scored, key=lambda item: (-item[1], item[0]))


def _results(cursor, *, course_id: int, ranked: Sequence[tuple[int, float]], tsquery: str):
    """The ranked chunks with their citation data; a headline when ``tsquery`` is given."""
    if not ranked:
        return []
    cursor.execute(
        """
        SELECT c.id, c.material_id, m.title, c.section, c.page, c.position, c.text,
               CASE WHEN %(tsquery)s = '' THEN left(c.text, 300)
                    ELSE ts_headline(%(config)s::regconfig, c.text, %(tsquery)s::tsquery,
                                     %(options)s) END
          FROM tutor_chunk AS c JOIN tutor_material AS m ON m.id = c.material_id
         WHERE c.id = ANY(%(ids)s)
        """,
        {
            "config": SEARCH_CONFIG,
            "tsquery": tsquery,
            "options": _HEADLINE_OPTIONS,
            "ids": [chunk_id for chunk_id, _score in ranked],
        },
    )
    rows = {row[0]: row for row in cursor.fetchall()}
    results = []
    for chunk_id, score in ranked:
        row = rows.get(chunk_id)
        if row is None:
            continue
        _id, material_id, title, section, page, position, text, headline = row
        marked = escape(headline).replace(_START, "<mark>").replace(_STOP, "</mark>")
        url = reverse("tutor:material-detail", args=[course_id, material_id])
        url += f"?passage={chunk_id}#chunk-{chunk_id}"
        results.append(
            SearchResult(
                chunk_id=chunk_id,
                material_id=material_id,
                title=title,
                section=section,
                page=page,
                position=position,
                text=text,
                score=float(score),
                url=url,
                headline=mark_safe(marked),  # noqa: S308 - escaped on the line above
            )
        )
    return results


def _may_search(*, course, user) -> bool:
    from learners.models import Course

    return (
        user is not None
        and user.is_authenticated
        and Course.objects.visible_to(user).filter(pk=course.pk).exists()
    )


def chunks_search(
    *,
    course,
    user,
    query: str,
    k: int = 5,
    mode: str = "hybrid",
    highlight: bool = False,
    query_vector: Sequence[float] | None = None,
) -> list[SearchResult]:
    """The ``k`` chunks of the course's material that best answer ``query``, best first.

    Raises PermissionDenied unless ``user`` is a member of the course or staff. An empty
    query, or one with nothing searchable, returns no results rather than an error.
    ``highlight`` fills each result's ``headline`` (otherwise the start of the text);
    ``query_vector`` is the query's embedding when the caller has it already (evaluations
    embed all their questions in one batch).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    if not _may_search(course=course, user=user):
        raise PermissionDenied("Only the course's members may search its material.")
    query = _clean(query)
    k = max(1, min(int(k), K_MAX))
    if not query:
        return []
    from pgvector import Vector

    from tutor.embedding import embed_texts

    vector = ""
    if mode != "keyword":
        if query_vector is None:
            query_vector = embed_texts([query])[0]
        vector = Vector(query_vector).to_text()
    with transaction.atomic(), connection.cursor() as cursor:
        # Local to this transaction, like SET LOCAL.
        cursor.execute("SELECT set_config('hnsw.ef_search', %s, true)", [str(max(EF_SEARCH, k))])
        idf, tsquery = {}, ""
        if mode != "vector" or highlight:
            idf, tsquery = _query_terms(cursor, course_id=course.pk, query=query)
        if mode == "vector":
            ranked = _vector_ranking(cursor, course_id=course.pk, vector=vector, limit=k)
        elif mode == "keyword":
            ranked = (
                _keyword_ranking(cursor, course_id=course.pk, idf=idf, tsquery=tsquery, limit=k)
                if idf
                else []
            )
        else:
            pool = [
                row[0]
                for row in _vector_ranking(cursor, course_id=course.pk, vector=vector, limit=POOL)
            ]
            if idf:
                keyword = _keyword_ranking(
                    cursor, course_id=course.pk, idf=idf, tsquery=tsquery, limit=POOL
                )
                pool = list(dict.fromkeys([*pool, *(row[0] for row in keyword)]))
            rows = _pool_scores(cursor, course_id=course.pk, ids=pool, idf=idf, vector=vector)
            ranked = fuse(rows)[:k]
        return _results(
            cursor, course_id=course.pk, ranked=ranked, tsquery=tsquery if highlight else ""
        )
