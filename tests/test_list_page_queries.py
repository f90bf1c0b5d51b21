"""Every list page answers with a fixed number of queries, however long its list: one
query per row would make a page slower for the bigger class (issue 19, 200 users on two
cores). Pages pinned elsewhere: home (tests/learners/test_home.py), progress, class
progress and practice (tests/learning/test_progress.py), assignments and the review queue
(tests/grading/test_workflow_views.py), the library (tests/material), people and staff
(tests/learners/test_people_pages.py), usage (tests/test_usage.py)."""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse

from learners.models import Concept, Notice
from learning.models import PracticeQuestion
from material.services import material_upload
from tests.material.material_files import MARKDOWN, media_root  # noqa: F401
from tutor.conversations import conversation_start
from tutor.models import Memory

pytestmark = pytest.mark.django_db


def _pinned(client, django_assert_num_queries, url: str, count: int) -> str:
    with django_assert_num_queries(count):
        response = client.get(url)
    assert response.status_code == 200
    return response.content.decode()


# Session, user, course with the user's role, concepts with their prerequisites and
# question counts, and the display preferences the base template reads.
CONCEPTS_PAGE = 11


def _concept(course, name: str, prerequisites=()) -> Concept:
    concept = Concept.objects.create(course=course, name=name)
    concept.prerequisites.set(prerequisites)
    PracticeQuestion.objects.create(
        concept=concept,
        kind="cloze",
        prompt=f"Plants make _____ ({name})",
        answers=["glucose"],
        status=PracticeQuestion.Status.APPROVED,
        origin=PracticeQuestion.Origin.TEACHER,
    )
    return concept


def test_the_concepts_page_query_count_is_pinned(
    client, teacher, course, django_assert_num_queries
):
    client.force_login(teacher)
    url = f"/courses/{course.pk}/concepts/"
    first = _concept(course, "Light")
    _pinned(client, django_assert_num_queries, url, CONCEPTS_PAGE)
    for index in range(4):
        _concept(course, f"Concept {index}", prerequisites=[first])
    page = _pinned(client, django_assert_num_queries, url, CONCEPTS_PAGE)
    assert "Concept 3" in page


MATERIALS_PAGE = 5


@pytest.mark.usefixtures("media_root")
def test_the_materials_page_query_count_is_pinned(
    client, teacher, course, django_assert_num_queries
):
    client.force_login(teacher)
    url = reverse("tutor:materials", args=[course.pk])

    def upload(name: str) -> None:
        material_upload(course=course, file=ContentFile(MARKDOWN.encode(), name=name))

    upload("first.md")
    _pinned(client, django_assert_num_queries, url, MATERIALS_PAGE)
    for index in range(4):
        upload(f"more-{index}.md")
    page = _pinned(client, django_assert_num_queries, url, MATERIALS_PAGE)
    assert "more-3" in page


NOTICES_PAGE = 5


def test_the_notices_page_query_count_is_pinned(client, student, course, django_assert_num_queries):
    client.force_login(student)
    url = reverse("notices")

    def notify(count: int) -> None:
        for index in range(count):
            Notice.objects.create(
                user=student,
                course=course,
                kind=Notice.Kind.GRADE_RELEASED,
                title=f"Grade {index}",
                url="/",
            )

    notify(1)
    _pinned(client, django_assert_num_queries, url, NOTICES_PAGE)
    notify(5)
    _pinned(client, django_assert_num_queries, url, NOTICES_PAGE)


TUTOR_PAGE = 8


def test_the_tutor_page_query_count_is_pinned(client, student, course, django_assert_num_queries):
    client.force_login(student)
    url = reverse("conversations:tutor", args=[course.pk])
    conversation_start(course=course, learner=student)
    _pinned(client, django_assert_num_queries, url, TUTOR_PAGE)
    for _ in range(4):
        conversation_start(course=course, learner=student)
    _pinned(client, django_assert_num_queries, url, TUTOR_PAGE)


MEMORIES_PAGE = 5


def test_the_memories_page_query_count_is_pinned(
    client, student, course, django_assert_num_queries
):
    client.force_login(student)
    url = reverse("conversations:memories", args=[course.pk])

    def remember(count: int) -> None:
        for index in range(count):
            Memory.objects.create(learner=student, course=course, summary=f"Memory {index}")

    remember(1)
    _pinned(client, django_assert_num_queries, url, MEMORIES_PAGE)
    remember(4)
    page = _pinned(client, django_assert_num_queries, url, MEMORIES_PAGE)
    assert "Memory 3" in page
