"""The concepts of a course, the same for every learner in it, kept in the cache.

The practice and progress pages (opened by every student, often) read the course's
concept graph from here instead of from the database each time: two queries fewer per
page under a class (issue 19). Any change of a concept, of its prerequisites or of one of
its questions (created, approved, rejected, deleted) makes the course's entry stale:
the course's version number in the cache goes up once the change is committed, and
readers look for the list under the new version. A reader asks for the version before it
reads the database, so a list read before a change is never stored under the version
that follows the commit.
"""

from __future__ import annotations

import contextlib
import time

import redis
from django.core.cache import cache
from django.db import transaction
from django.db.models import Count, Q
from django.db.models.signals import m2m_changed, post_delete, post_save

from learners.models import Concept, Course
from learning.models import PracticeQuestion

# Long enough to spare the database, short enough that an entry orphaned by a version bump
# (or by a write the signals cannot see) does not linger.
CACHE_SECONDS = 600


def _version_key(course_id: int) -> str:
    return f"course-concepts:{course_id}:version"


def _version(course_id: int) -> int:
    key = _version_key(course_id)
    version = cache.get(key)
    if version is None:
        # Lost (a flushed cache) or never set: start above any version used before, so
        # no entry stored under an earlier version can be read again.
        fresh = time.time_ns() // 1000
        cache.add(key, fresh, None)
        version = cache.get(key) or fresh
    return int(version)


def _from_database(course: Course) -> list[Concept]:
    return list(
        Concept.objects.for_course(course)
        .annotate(
            approved=Count(
                "questions", filter=Q(questions__status=PracticeQuestion.Status.APPROVED)
            )
        )
        .prefetch_related("prerequisites")
        # Meta.ordering is dropped from a GROUP BY query: the order is said here.
        .order_by("name", "id")
    )


def course_concepts(*, course: Course) -> list[Concept]:
    """Every concept of the course, by name, each with ``approved`` (how many of its
    practice questions are approved) and its prerequisites prefetched. With the cache
    (Redis) down, from the database."""
    try:
        key = f"course-concepts:{course.pk}:v{_version(course.pk)}"
        concepts = cache.get(key)
    except redis.RedisError:
        return _from_database(course)
    if concepts is None:
        concepts = _from_database(course)
        with contextlib.suppress(redis.RedisError):
            cache.set(key, concepts, CACHE_SECONDS)
    return concepts


def _bump(course_id: int) -> None:
    # Not set: the next reader starts a new version. The cache down: what it held comes
    # back with it, at most CACHE_SECONDS old.
    with contextlib.suppress(ValueError, redis.RedisError):
        cache.incr(_version_key(course_id))


def course_concepts_changed(*, course_id: int) -> None:
    """The course's concepts (or their questions) changed. The version goes up now (the
    writer's own transaction reads the change at once) and again once the change is
    committed (what another request read and stored meanwhile was the old list)."""
    _bump(course_id)
    transaction.on_commit(lambda: _bump(course_id))


def _concept_changed(sender, instance: Concept, **kwargs) -> None:
    course_concepts_changed(course_id=instance.course_id)


def _prerequisites_changed(sender, instance, action: str, **kwargs) -> None:
    if action.startswith("post_"):
        course_concepts_changed(course_id=instance.course_id)


def _question_changed(sender, instance: PracticeQuestion, **kwargs) -> None:
    course_id: int | None
    if PracticeQuestion.concept.is_cached(instance):
        course_id = instance.concept.course_id
    else:
        course_id = (
            Concept.objects.filter(pk=instance.concept_id)
            .values_list("course_id", flat=True)
            .first()
        )
    if course_id is not None:
        course_concepts_changed(course_id=course_id)


def course_concepts_signals_connect() -> None:
    """Called once, when the app is ready."""
    uid = "learning.course_concepts"
    for signal in (post_save, post_delete):
        signal.connect(_concept_changed, sender=Concept, dispatch_uid=f"{uid}.concept")
        signal.connect(_question_changed, sender=PracticeQuestion, dispatch_uid=f"{uid}.question")
    m2m_changed.connect(
        _prerequisites_changed,
        sender=Concept.prerequisites.through,
        dispatch_uid=f"{uid}.prerequisites",
    )
