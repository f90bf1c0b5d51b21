"""Search a course's material: the one selector that retrieves chunks.

Hybrid retrieval, its candidates found in PostgreSQL, both halves bounded whatever the
course's size:

1. Keyword candidates: chunks whose tsvector matches the query's rarest lexemes (GIN
   index), at most ``MATCH_BUDGET`` of them, ranked by Okapi BM25 computed here from the
   course's own statistics: document frequencies counted through the GIN index, chunk
   lengths stored on the chunk, term frequencies read from the tsvector's positions (of
   the query's lexemes only: ``setweight``/``ts_filter`` cut each tsvector down first;
   a word too common to count cheaply is estimated from ANALYZE's statistics).
   (``ts_rank`` is not BM25: it has no inverse document frequency, and BM25 ranks better
   on our evaluation.) The course's chunk count, average length and each lexeme's
   document frequency are cached (``STATS_SECONDS``, dropped when material changes).
2. Vector candidates: the nearest ``POOL`` chunks by cosine distance, from the HNSW index
   (``vector_cosine_ops``) with ``hnsw.ef_search`` chosen by measurement (``EF_SEARCH``)
   and widened when the course is a small share of the table (the index is shared by all
   courses and filtered afterwards); pgvector 0.8 and later scans iteratively instead. A
   small course (``EXACT_SCAN_MAX`` chunks) is scanned exactly: that is as fast, and exact.
3. Fusion: over the union of both candidate pools, BM25 divided by the pool's best BM25
   plus cosine min-max scaled over the pool, weighted equally. Plain reciprocal-rank
   fusion discards how far ahead the best match is and loses precision at rank 1.

A hybrid search runs, after the membership check: the query's lexemes (the statement
also sets ``hnsw.ef_search``); the document frequencies of lexemes not cached yet (ANALYZE's
shares cached with the course's statistics); the keyword half (each candidate's query
lexemes with their positions, scored here: the same sums in SQL, a subquery over
``unnest`` per row, cost twice as much); the vector half with what fusion lacks (the
query lexemes of its chunks, the cosines of the keyword half's best it did not find:
each vector is read once, from TOAST); the excerpts of the ``k`` results. Ingestion
merges the GIN index's pending list after writing chunks (``search_index_settle``).

On SQuAD dev (24 articles, 1,214 chunks, 5,696 questions; ``manage.py eval_retrieval
DATASET --mode hybrid vector keyword``) recall@1 / @5 / @10 were: hybrid 0.839 / 0.970 /
0.984, keyword (this BM25) 0.811 / 0.946 / 0.967, vector 0.661 / 0.884 / 0.929. In a
prototype on the same chunks plain RRF (k=60) reached only 0.771 / 0.955, and keyword
weights 0.6-0.8 scored below 0.5 on recall@1 (0.836, 0.831, 0.827).
"""

from __future__ import annotations

import hashlib
import logging
import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.db import DatabaseError, connection, transaction
from django.urls import reverse
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from ai import embedding
from learners.models import Course
from material.chunking import passage_label
from material.models import SEARCH_CONFIG, Chunk, Material

if TYPE_CHECKING:
    from learners.models import User


logger = logging.getLogger(__name__)

# The tables as the models name them (they kept the tutor app's names when they moved).
_CHUNKS = Chunk._meta.db_table
_MATERIALS = Material._meta.db_table

MODES = ("hybrid", "vector", "keyword")
K_MAX = 50
QUERY_MAX_CHARS = 2000
QUERY_MAX_TERMS = 64
# Candidates taken from each retriever before fusion.
POOL = 50
# Most rows the keyword candidates' BM25 is computed for (see _query_terms).
MATCH_BUDGET = 2000
# Document frequencies are counted exactly up to here, estimated past it (a term that
# common is never a candidate source: MATCH_BUDGET; see _document_frequencies).
DF_COUNT_MAX = MATCH_BUDGET
# HNSW search breadth for a course that is the whole table; at least POOL, so the index
# can return POOL rows. Chosen with ``python -m bench.retrieval --ef-search ...``: see
# docs/architecture.md for the recall and latency of each value.
EF_SEARCH = 100
# pgvector refuses a wider hnsw.ef_search.
EF_SEARCH_MAX = 1000
# A course with at most this many chunks is scanned exactly (no index).
EXACT_SCAN_MAX = 5000
# How long a course's statistics (chunk count, average length, document frequencies)
# are reused; ingestion and removal of material drop them at once.
STATS_SECONDS = 600
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

    @property
    def label(self) -> str:
        return passage_label(self.title, self.section)


def _clean(query: str) -> str:
    # PostgreSQL text cannot hold NUL; the rest of any string is safe as a bound parameter.
    return (query or "").replace("\x00", " ")[:QUERY_MAX_CHARS].strip()


def _tsquery_literal(lexeme: str) -> str:
    return "'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'"


# --- the course's statistics, cached -----------------------------------------------------


@dataclass(frozen=True)
class CourseStats:
    chunks: int  # the course's chunks: N of BM25
    avgdl: float  # their average length in words
    table_chunks: int  # chunks of every course: the HNSW index holds them all
    iterative_scan: bool  # pgvector 0.8+: a filtered HNSW scan goes on until it has enough
    token: str  # names this computation in the keys of its document frequencies


def _stats_key(course_id: int) -> str:
    return f"retrieval:stats:{course_id}"


def _df_key(stats: CourseStats, lexeme: str) -> str:
    digest = hashlib.blake2b(lexeme.encode(), digest_size=12).hexdigest()
    return f"retrieval:df:{stats.token}:{digest}"


def _cache_get_many(keys: list[str]) -> dict:
    try:
        return cache.get_many(keys)
    except Exception as error:  # noqa: BLE001 - the cache is an optimisation: search goes on
        logger.warning("retrieval cache unavailable: %r", error)
        return {}


def _cache_set_many(values: dict) -> None:
    try:
        cache.set_many(values, timeout=STATS_SECONDS)
    except Exception as error:  # noqa: BLE001 - as above
        logger.warning("retrieval cache unavailable: %r", error)


def course_stats_forget(*, course_id: int) -> None:
    """Drop a course's cached statistics: its material changed (new, re-read or removed)."""
    try:
        cache.delete(_stats_key(course_id))
    except Exception as error:  # noqa: BLE001 - as above; they expire after STATS_SECONDS
        logger.warning("retrieval cache unavailable: %r", error)


def _course_stats(cursor, *, course_id: int) -> CourseStats:
    key = _stats_key(course_id)
    cached = _cache_get_many([key]).get(key)
    if cached is not None:
        return CourseStats(**cached)
    cursor.execute(
        f"""
        SELECT count(*), coalesce(avg(word_count), 1)::float8,
               (SELECT greatest(reltuples, 0)::bigint FROM pg_class
                 WHERE oid = '{_CHUNKS}'::regclass),
               (SELECT extversion FROM pg_extension WHERE extname = 'vector')
          FROM {_CHUNKS} WHERE course_id = %s
        """,  # noqa: S608
        [course_id],
    )
    chunks, avgdl, table_chunks, version = cursor.fetchone()
    major_minor = tuple(int(part) for part in (version or "0.0").split(".")[:2])
    stats = CourseStats(
        chunks=chunks,
        avgdl=max(avgdl, 1.0),
        # reltuples is an estimate (-1 before the first ANALYZE): never below the course.
        table_chunks=max(table_chunks or 0, chunks),
        iterative_scan=major_minor >= (0, 8),
        token=secrets.token_hex(8),
    )
    _cache_set_many({key: stats.__dict__})
    return stats


# The course of a GIN match, checked on its row. Written as an expression so the planner
# cannot AND the GIN bitmap with the course_id index's: that bitmap holds every chunk of
# the course (at 100k chunks it cost 30-50 ms a statement, for a few dozen matches).
_COURSE_ON_THE_ROW = "c.course_id + 0 = %(course)s"
# The GIN index of the chunks' tsvectors (material.models.Chunk.Meta).
_KEYWORD_INDEX = "chunk_search_vector_gin"


def search_index_settle() -> None:
    """Merge the keyword index's pending entries into the index: call after writing chunks.

    The GIN index of ``search_vector`` takes new entries into a pending list (its
    ``fastupdate``, cheap inserts) that every search through the index then reads whole,
    up to ``gin_pending_list_limit`` (4 MB): after a large ingestion each lexeme looked up
    cost 3-4 ms at any course size (10k chunks: document frequencies 32 ms and the keyword
    half 97 ms a search, against 10 and 32 once merged), and the planner, seeing that cost,
    scanned the whole table instead. VACUUM merges it too, but only when autovacuum comes
    by. Never fails the caller: without it search is slower, not wrong.
    """
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT gin_clean_pending_list(%s::regclass)", [_KEYWORD_INDEX])
    except DatabaseError as error:
        logger.warning("keyword index pending list not merged: %r", error)


def _shares_key(stats: CourseStats) -> str:
    return f"retrieval:shares:{stats.token}"


def _common_lexeme_shares(cursor, *, stats: CourseStats) -> dict[str, float]:
    """The share of all chunks holding each of the commonest lexemes, from ANALYZE's
    statistics of the tsvector column (empty before the first ANALYZE); cached with the
    course's statistics (reading them costs 1-2 ms: a thousand lexemes cast from
    ``anyarray``)."""
    key = _shares_key(stats)
    cached = _cache_get_many([key]).get(key)
    if cached is not None:
        return cached
    cursor.execute(
        """
        SELECT most_common_elems::text::text[], most_common_elem_freqs FROM pg_stats
         WHERE schemaname = current_schema() AND tablename = %s AND attname = 'search_vector'
        """,
        [_CHUNKS],
    )
    row = cursor.fetchone()
    # The frequencies end with three summary numbers after the one of each lexeme.
    shares = dict(zip(row[0], row[1], strict=False)) if row and row[0] else {}
    _cache_set_many({key: shares})
    return shares


def _document_frequencies(cursor, *, stats: CourseStats, course_id: int, lexemes: list[str]):
    """How many of the course's chunks hold each lexeme.

    A lexeme common enough to hold more than ``DF_COUNT_MAX`` of them by ANALYZE's
    statistics is estimated: its share of the table times the course's chunks. Counting
    it would cost as much as its rows (the GIN index's bitmap of a common word is built
    whole, and each row is read to check its course). The rest are counted through the
    index, up to ``DF_COUNT_MAX``; a count that reaches it takes the estimate if larger.
    """
    shares = _common_lexeme_shares(cursor, stats=stats) if stats.chunks > DF_COUNT_MAX else {}
    estimates = {lexeme: round(shares.get(lexeme, 0.0) * stats.chunks) for lexeme in lexemes}
    frequencies = {
        lexeme: min(stats.chunks, estimate)
        for lexeme, estimate in estimates.items()
        if estimate >= DF_COUNT_MAX
    }
    to_count = [lexeme for lexeme in lexemes if lexeme not in frequencies]
    if to_count:
        cursor.execute(
            f"""
            SELECT t.lexeme,
                   (SELECT count(*) FROM (
                        SELECT 1 FROM {_CHUNKS} c
                         WHERE {_COURSE_ON_THE_ROW}
                           AND c.search_vector @@ t.literal::tsquery
                         LIMIT %(cap)s) AS m)
              FROM unnest(%(lexemes)s::text[], %(literals)s::text[]) AS t(lexeme, literal)
            """,  # noqa: S608
            {
                "course": course_id,
                "cap": DF_COUNT_MAX,
                "lexemes": to_count,
                "literals": [_tsquery_literal(lexeme) for lexeme in to_count],
            },
        )
        for lexeme, df in cursor.fetchall():
            capped = df >= DF_COUNT_MAX
            frequencies[lexeme] = max(df, min(stats.chunks, estimates[lexeme])) if capped else df
    return frequencies


def _query_lexemes(cursor, *, query: str, ef_search: int | None, iterative: bool) -> list[str]:
    """The query's lexemes (at most QUERY_MAX_TERMS), in the statement that also sets the
    transaction's HNSW search breadth (``_ef_search_settings``): one round trip."""
    settings_sql, settings_params = _ef_search_settings(ef_search, iterative=iterative)
    cursor.execute(
        _statement(
            "SELECT ARRAY(SELECT lexeme FROM unnest(to_tsvector(%s::regconfig, %s)) LIMIT %s)",
            *(", " + setting for setting in settings_sql),
        ),
        [SEARCH_CONFIG, query, QUERY_MAX_TERMS, *settings_params],
    )
    return list(cursor.fetchone()[0])


def _query_terms(
    cursor,
    *,
    stats: CourseStats,
    course_id: int,
    query: str,
    ef_search: int | None = None,
    iterative: bool = False,
):
    """The query's lexemes with their BM25 idf in the course, and a tsquery matching any.

    Sets the transaction's hnsw.ef_search on the way (``ef_search``; None: left alone)."""
    lexemes = _query_lexemes(cursor, query=query, ef_search=ef_search, iterative=iterative)
    if not lexemes or not stats.chunks:
        return {}, ""
    keys = {lexeme: _df_key(stats, lexeme) for lexeme in lexemes}
    cached = _cache_get_many(list(keys.values()))
    frequencies = {lexeme: cached[key] for lexeme, key in keys.items() if key in cached}
    missing = [lexeme for lexeme in lexemes if lexeme not in frequencies]
    if missing:
        counted = _document_frequencies(cursor, stats=stats, course_id=course_id, lexemes=missing)
        frequencies.update(counted)
        _cache_set_many({keys[lexeme]: df for lexeme, df in counted.items()})
    frequencies = {lexeme: df for lexeme, df in frequencies.items() if df}
    if not frequencies:
        return {}, ""
    total = max(stats.chunks, max(frequencies.values()))
    idf = {
        lexeme: math.log(1 + (total - df + 0.5) / (df + 0.5)) for lexeme, df in frequencies.items()
    }
    # Candidates come from the rarest terms, as many as keep the matched rows under
    # MATCH_BUDGET (at least one term): BM25 reads every matched row's tsvector, and a
    # chunk that shares only the commonest words with the query rarely ranks anyway.
    # Every term still counts in the score.
    matching: list[str] = []
    rows = 0
    for lexeme, df in sorted(frequencies.items(), key=lambda item: (item[1], item[0])):
        if matching and rows + df > MATCH_BUDGET:
            break
        matching.append(lexeme)
        rows += df
    tsquery = " | ".join(_tsquery_literal(lexeme) for lexeme in matching)
    return idf, tsquery


# --- the statement -----------------------------------------------------------------------


def _statement(*parts: str) -> str:
    """SQL joined from this module's constants; every value is a bound parameter."""
    return "".join(parts)


# The query's lexemes of the chunk ``{c}`` with their positions, as tsvector text
# (``'lexeme':3A,17A``): setweight marks them and ts_filter keeps them, so the rest of the
# tsvector is never unnested; BM25 is computed from it here (``_bm25``), which costs half
# what the same sums cost in SQL (a subquery over unnest for each row).
_QUERY_TERMS = "ts_filter(setweight({c}.search_vector, 'A', %(lexemes)s::text[]), '{{a}}')::text"
# At most MATCH_BUDGET rows even when the cached document frequencies are behind.
_KEYWORD = _statement(
    "SELECT c.id, c.word_count, ",
    _QUERY_TERMS.format(c="c"),
    f"""
      FROM {_CHUNKS} AS c
     WHERE {_COURSE_ON_THE_ROW} AND c.search_vector @@ %(tsquery)s::tsquery
     LIMIT %(budget)s
""",  # noqa: S608
)
# The nearest chunks of the course, (id, cosine). The HNSW index serves ORDER BY
# embedding <=> vector: the distance is computed once a row (the vectors are TOASTed: each
# computation reads them again) and the cosine from it outside. Ordering by the cosine
# itself keeps the planner off the index, for an exact scan of the course's rows.
_VECTOR_INDEXED = f"""
    vector AS (
        SELECT id, 1 - distance AS cosine FROM (
            SELECT id, embedding <=> %(vector)s::vector AS distance FROM {_CHUNKS}
             WHERE course_id = %(course)s
             ORDER BY distance
             LIMIT %(limit)s
        ) AS nearest
    )
"""  # noqa: S608
_VECTOR_EXACT = f"""
    vector AS (
        SELECT id, 1 - (embedding <=> %(vector)s::vector) AS cosine FROM {_CHUNKS}
         WHERE course_id = %(course)s
         ORDER BY cosine DESC, id
         LIMIT %(limit)s
    )
"""  # noqa: S608
# Both halves' candidates with what fusion lacks of each: the vector half's with their
# query lexemes (NULL for those among the keyword half's best: scored already), the
# keyword half's best that the vector half did not find with their cosine.
_POOL = _statement(
    """
    SELECT v.id, c.word_count,
           CASE WHEN v.id = ANY(%(keyword_ids)s::bigint[]) THEN NULL ELSE """,
    _QUERY_TERMS.format(c="c"),
    f""" END,
           v.cosine
      FROM vector AS v JOIN {_CHUNKS} AS c ON c.id = v.id
    UNION ALL
    SELECT c.id, c.word_count, NULL, 1 - (c.embedding <=> %(vector)s::vector)
      FROM {_CHUNKS} AS c
     WHERE c.id = ANY(%(keyword_ids)s::bigint[]) AND c.id NOT IN (SELECT id FROM vector)
""",  # noqa: S608
)
# One excerpt of 20 to 45 words around the best match (fragment mode cuts too short).
_HEADLINE_OPTIONS = f"StartSel={_START}, StopSel={_STOP}, MaxWords=45, MinWords=20"


def _vector_plan(stats: CourseStats) -> tuple[str, int | None]:
    """The vector half's CTE and its hnsw.ef_search (None: an exact scan).

    Without iterative scans the index returns ``ef_search`` rows of all courses, which the
    course filter then thins: the breadth grows with the course's share of the table, and
    a course too small a share for the widest breadth is scanned exactly.
    """
    if stats.chunks <= EXACT_SCAN_MAX:
        return _VECTOR_EXACT, None
    if stats.iterative_scan:
        return _VECTOR_INDEXED, EF_SEARCH
    share = stats.chunks / max(stats.table_chunks, 1)
    needed = math.ceil(EF_SEARCH / share)
    if needed > EF_SEARCH_MAX:
        return _VECTOR_EXACT, None
    return _VECTOR_INDEXED, needed


def _bm25_weights(idf: dict[str, float]) -> dict[str, float]:
    """Each lexeme's idf keyed by the lexeme as tsvector text writes it: quoted, with its
    quotes and backslashes doubled (as in a tsquery literal)."""
    return {_tsquery_literal(lexeme): weight for lexeme, weight in idf.items()}


def _bm25(query_terms: str, word_count: int, weights: dict[str, float], avgdl: float) -> float:
    """Okapi BM25 of a chunk from its query lexemes' positions (``_QUERY_TERMS``, tsvector
    text such as ``'cell':3A,17A 'it''s':5A``): each lexeme's frequency is its count of
    positions; ``weights`` from ``_bm25_weights``.

    Read without a regular expression, three times faster over a thousand candidates:
    lexemes never hold a space (to_tsvector's parser splits on it), so a space ends each
    lexeme's entry, and its last colon comes before the positions. An entry without
    positions (a stripped lexeme: SQL's NULL frequency) is not counted.
    """
    score = 0.0
    norm = BM25_K1 * (1 - BM25_B + BM25_B * word_count / avgdl)
    for entry in query_terms.split(" "):
        quoted, _colon, positions = entry.rpartition(":")
        weight = weights.get(quoted)
        if weight is None:
            continue
        tf = positions.count(",") + 1
        score += weight * tf * (BM25_K1 + 1) / (tf + norm)
    return score


def _ef_search_settings(ef_search: int | None, *, iterative: bool) -> tuple[list[str], list]:
    """SQL expressions (and their parameters) that set the transaction's HNSW search
    breadth, like SET LOCAL: none for an exact scan (``ef_search`` None)."""
    if ef_search is None:
        return [], []
    settings = ["set_config('hnsw.ef_search', %s, true)"]
    params = [str(ef_search)]
    if iterative:
        settings.append("set_config('hnsw.iterative_scan', 'relaxed_order', true)")
    return settings, params


def _set_ef_search(cursor, ef_search: int | None, *, iterative: bool) -> None:
    settings_sql, settings_params = _ef_search_settings(ef_search, iterative=iterative)
    if settings_sql:
        cursor.execute("SELECT " + ", ".join(settings_sql), settings_params)


def _vector_ranking(cursor, *, course_id: int, vector: str, limit: int, exact: bool = False):
    """(id, cosine) of the ``limit`` nearest chunks of the course, nearest first; from the
    HNSW index under the transaction's hnsw.ef_search, or ``exact``ly."""
    cursor.execute(
        _statement(
            "WITH",
            _VECTOR_EXACT if exact else _VECTOR_INDEXED,
            "SELECT id, cosine FROM vector ORDER BY cosine DESC, id",
        ),
        {"course": course_id, "vector": vector, "limit": limit},
    )
    return cursor.fetchall()


def _keyword_scores(cursor, *, course_id, stats, idf, tsquery: str) -> dict[int, float]:
    """BM25 of each of the (at most MATCH_BUDGET) chunks matching ``tsquery``, by id."""
    cursor.execute(
        _KEYWORD,
        {"lexemes": list(idf), "course": course_id, "tsquery": tsquery, "budget": MATCH_BUDGET},
    )
    weights = _bm25_weights(idf)
    return {
        chunk_id: _bm25(terms, word_count, weights, stats.avgdl)
        for chunk_id, word_count, terms in cursor.fetchall()
    }


def _best(scores: dict[int, float], limit: int) -> list[tuple[int, float]]:
    return sorted(scores.items(), key=lambda row: (-row[1], row[0]))[:limit]


def _pool_scores(cursor, *, course_id, stats, idf, tsquery: str, vector: str):
    """(id, bm25, cosine) of the union of both halves' POOL best: the keyword half's
    statement, then the vector half's with what the pool lacks (none of the first
    without a term to match)."""
    scores = (
        _keyword_scores(cursor, course_id=course_id, stats=stats, idf=idf, tsquery=tsquery)
        if idf
        else {}
    )
    keyword = dict(_best(scores, POOL))
    vector_cte, _ef = _vector_plan(stats)
    cursor.execute(
        _statement("WITH ", vector_cte, _POOL),
        {
            "lexemes": list(idf),
            "keyword_ids": list(keyword),
            "course": course_id,
            "limit": POOL,
            "vector": vector,
        },
    )
    weights = _bm25_weights(idf)
    rows = []
    for chunk_id, word_count, terms, cosine in cursor.fetchall():
        bm25 = scores.get(chunk_id)  # a keyword candidate: scored already
        if bm25 is None:
            bm25 = _bm25(terms or "", word_count, weights, stats.avgdl)
        rows.append((chunk_id, bm25, cosine))
    return rows


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
        f"""
        SELECT c.id, c.material_id, m.title, c.section, c.page, c.position, c.text,
               CASE WHEN %(tsquery)s = '' THEN left(c.text, 300)
                    ELSE ts_headline(%(config)s::regconfig, c.text, %(tsquery)s::tsquery,
                                     %(options)s) END
          FROM {_CHUNKS} AS c JOIN {_MATERIALS} AS m ON m.id = c.material_id
         WHERE c.id = ANY(%(ids)s)
        """,  # noqa: S608
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


def _may_search(*, course: Course, user: User) -> bool:
    return (
        user is not None
        and user.is_authenticated
        and Course.objects.visible_to(user).filter(pk=course.pk).exists()
    )


def chunks_search(
    *,
    course: Course,
    user: User,
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

    vector = ""
    if mode != "keyword":
        if query_vector is None:
            query_vector = embedding.embed_texts([query])[0]
        vector = Vector(list(query_vector)).to_text()
    with transaction.atomic(), connection.cursor() as cursor:
        stats = _course_stats(cursor, course_id=course.pk)
        if not stats.chunks:
            return []
        ef_search = None
        if mode != "keyword":
            _cte, ef_search = _vector_plan(stats)
            ef_search = None if ef_search is None else max(ef_search, k)
        idf, tsquery = {}, ""
        if mode != "vector" or highlight:
            # Sets hnsw.ef_search in the same statement.
            idf, tsquery = _query_terms(
                cursor,
                stats=stats,
                course_id=course.pk,
                query=query,
                ef_search=ef_search,
                iterative=stats.iterative_scan,
            )
        else:
            _set_ef_search(cursor, ef_search, iterative=stats.iterative_scan)
        if mode == "keyword":
            ranked = (
                _best(
                    _keyword_scores(
                        cursor, course_id=course.pk, stats=stats, idf=idf, tsquery=tsquery
                    ),
                    k,
                )
                if idf
                else []
            )
        elif mode == "vector":
            ranked = _vector_ranking(
                cursor, course_id=course.pk, vector=vector, limit=k, exact=ef_search is None
            )
        else:
            rows = _pool_scores(
                cursor, course_id=course.pk, stats=stats, idf=idf, tsquery=tsquery, vector=vector
            )
            ranked = fuse(rows)[:k]
        return _results(
            cursor, course_id=course.pk, ranked=ranked, tsquery=tsquery if highlight else ""
        )
