"""The course's concepts come from the cache, and every change of a concept, its
prerequisites or its questions is seen on the next read (learning/course_concepts.py)."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

from learners.models import Concept
from learning.concepts import concept_delete, concept_save
from learning.course_concepts import course_concepts
from learning.models import PracticeQuestion
from learning.practice import question_review

pytestmark = pytest.mark.django_db


def _read(course) -> dict[str, tuple[int, list[str]]]:
    """name: (approved questions, prerequisite names), as the pages see them."""
    return {
        c.name: (c.approved, sorted(p.name for p in c.prerequisites.all()))
        for c in course_concepts(course=course)
    }


def _queries(course) -> int:
    with CaptureQueriesContext(connection) as queries:
        _read(course)
    return len(queries)


def test_the_second_read_asks_the_database_nothing(course, make_concept, make_question):
    light = make_concept("Light")
    make_question(make_concept("Sugar", prerequisites=[light]))
    assert _queries(course) == 2  # the concepts with their counts, the prerequisites
    assert _queries(course) == 0
    assert _read(course) == {"Light": (0, []), "Sugar": (1, ["Light"])}


def test_each_course_has_its_own_list(course, other_course, make_concept):
    make_concept("Light")
    make_concept("Volcanoes", course=other_course)
    assert list(_read(course)) == ["Light"]
    assert list(_read(other_course)) == ["Volcanoes"]


def test_a_new_renamed_or_deleted_concept_is_seen_at_once(course, make_concept):
    light = make_concept("Light")
    assert list(_read(course)) == ["Light"]
    concept_save(course=course, name="Water", description="", prerequisites=[])
    assert list(_read(course)) == ["Light", "Water"]
    concept_save(course=course, name="Sunlight", description="", prerequisites=[], concept=light)
    assert list(_read(course)) == ["Sunlight", "Water"]
    concept_delete(concept=Concept.objects.get(name="Water"))
    assert list(_read(course)) == ["Sunlight"]


def test_changed_prerequisites_are_seen_at_once(course, make_concept):
    light = make_concept("Light")
    sugar = make_concept("Sugar")
    assert _read(course)["Sugar"] == (0, [])
    sugar.prerequisites.add(light)
    assert _read(course)["Sugar"] == (0, ["Light"])
    light.unlocks.remove(sugar)  # from the other side of the relation
    assert _read(course)["Sugar"] == (0, [])


def test_approved_rejected_and_deleted_questions_are_counted_at_once(
    course, teacher, make_concept, make_question
):
    light = make_concept("Light")
    waiting = make_question(light, status=PracticeQuestion.Status.PENDING)
    assert _read(course)["Light"] == (0, [])
    question_review(question=waiting, reviewer=teacher, approve=True)
    assert _read(course)["Light"] == (1, [])
    second = make_question(light)
    assert _read(course)["Light"] == (2, [])
    question_review(question=second, reviewer=teacher, approve=False)
    assert _read(course)["Light"] == (1, [])
    waiting.delete()
    assert _read(course)["Light"] == (0, [])


def test_a_lost_version_starts_a_new_one_and_never_an_old_list(course, make_concept):
    make_concept("Light")
    assert list(_read(course)) == ["Light"]
    cache.delete(f"course-concepts:{course.pk}:version")  # a flushed or restarted cache
    make_concept("Water")
    assert list(_read(course)) == ["Light", "Water"]


def test_a_change_committed_by_another_request_replaces_what_was_read_before(
    course, make_concept, django_capture_on_commit_callbacks
):
    """A request that read the list just before another one's change committed must not
    keep that list: the version goes up again at the commit."""
    make_concept("Light")
    assert list(_read(course)) == ["Light"]
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        make_concept("Water")
    # Another request, in the moment between the change and its commit, stores the list
    # as it was (the test's transaction sees Water already, so it is set by hand).
    key_version = cache.get(f"course-concepts:{course.pk}:version")
    cache.set(f"course-concepts:{course.pk}:v{key_version}", [], 600)
    assert _read(course) == {}
    for callback in callbacks:
        callback()  # the commit
    assert list(_read(course)) == ["Light", "Water"]


def test_with_the_cache_down_the_list_comes_from_the_database(
    settings, client, student, course, make_concept, make_question
):
    make_question(make_concept("Light"))
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens there: refused at once
        }
    }
    make_question(make_concept("Water"))  # the change is saved; its version cannot go up
    assert _read(course) == {"Light": (1, []), "Water": (1, [])}
    client.force_login(student)
    assert client.get(f"/courses/{course.pk}/practice/").status_code == 200
    assert client.get(f"/courses/{course.pk}/progress/").status_code == 200


def test_the_concepts_come_by_name_whatever_order_they_were_made_in(course, make_concept):
    for name in ("Zygote", "Atom", "Mitosis", "Cell"):
        make_concept(name)
    # The list is counted per concept (a GROUP BY, which drops Meta.ordering): by name still.
    assert [c.name for c in course_concepts(course=course)] == ["Atom", "Cell", "Mitosis", "Zygote"]
