"""The students' material library: ready material, rendered Markdown, a page at a time."""

from __future__ import annotations

import hashlib

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse

from material.library_views import (
    LIBRARY_PAGE_SIZE,
    PASSAGES_PAGE_SIZE,
    passage_text_without_overlap,
)
from material.models import Chunk, Material
from material.services import material_ingest, material_upload
from tests.material.material_files import MARKDOWN, media_root  # noqa: F401

pytestmark = [pytest.mark.usefixtures("media_root"), pytest.mark.django_db]


@pytest.fixture
def ready(course):
    material = material_upload(course=course, file=ContentFile(MARKDOWN.encode(), name="c.md"))
    return material_ingest(material_id=material.pk)


def _material(course, title: str, *, status: str = "ready") -> Material:
    return Material.objects.create(
        course=course, title=title, original_name=f"{title}.md", kind="md", status=status
    )


@pytest.fixture
def long_material(course):
    """A material of 2,000 passages in 40 sections (about a 2 MB file)."""
    material = _material(course, "A very long reader")
    text = "Mitochondria release energy from glucose in many small steps. " * 20
    Chunk.objects.bulk_create(
        [
            Chunk(
                material=material,
                course=course,
                position=position,
                text=f"Passage {position}. {text}",
                section=f"Part {position // 50} › Topic {position // 10}",
                page=None,
                text_hash=hashlib.sha256(str(position).encode()).hexdigest(),
                embedding=[0.0] * 383 + [1.0],
                word_count=len(text.split()) + 2,
            )
            for position in range(2000)
        ]
    )
    return material


def test_students_see_ready_material_only_and_a_search_box(
    client, course, student, ready, django_assert_max_num_queries
):
    _material(course, "Still processing", status="processing")
    _material(course, "Broken upload", status="failed")
    client.force_login(student)
    # session, user, preferences, course, role, count, page of materials.
    with django_assert_max_num_queries(8):
        response = client.get(reverse("tutor:library", args=[course.pk]))
    assert response.status_code == 200
    assert reverse("tutor:material-detail", args=[course.pk, ready.pk]) in response.text
    assert "Still processing" not in response.text and "Broken upload" not in response.text
    assert reverse("tutor:search", args=[course.pk]) in response.text
    assert (
        reverse("tutor:library", args=[course.pk])
        in client.get(reverse("course-detail", args=[course.pk])).text
    )


def test_the_library_is_paginated_and_filters_by_title(client, course, student):
    for index in range(LIBRARY_PAGE_SIZE + 5):
        _material(course, f"Chapter {index:02}")
    client.force_login(student)
    url = reverse("tutor:library", args=[course.pk])
    first = client.get(url)
    assert "Page 1 of 2" in first.text and "Chapter 24" in first.text
    assert "Chapter 25" not in first.text
    assert "Chapter 29" in client.get(url, {"page": 2}).text
    filtered = client.get(url, {"title": "chapter 1"})
    assert "10 materials to read" in filtered.text
    assert "No material has that in its title." in client.get(url, {"title": "zzz"}).text


def test_a_stranger_cannot_open_the_library(client, course, other_student):
    client.force_login(other_student)
    assert client.get(reverse("tutor:library", args=[course.pk])).status_code == 404


def test_the_material_reads_as_html_with_its_headings_not_raw_markdown(
    client, course, student, ready
):
    client.force_login(student)
    text = client.get(reverse("tutor:material-detail", args=[course.pk, ready.pk])).text
    assert "<h2>Cell Energy</h2>" in text and "<h3>Photosynthesis</h3>" in text
    assert "<table>" in text and "<td>Chloroplast</td>" in text
    assert "| --- |" not in text
    # The hard line break inside the paragraph is gone: one paragraph.
    assert "stored in glucose. Chloroplasts\nin leaf" in text or "glucose. Chloroplasts" in text
    assert "<br" not in text


def test_html_in_material_is_shown_as_text_never_run(client, course, student):
    material = _material(course, "Hostile")
    Chunk.objects.create(
        material=material,
        course=course,
        position=0,
        text='**Bold** <script>alert("x")</script> [link](javascript:alert(1))',
        text_hash="x",
        embedding=[0.0] * 383 + [1.0],
        word_count=6,
    )
    client.force_login(student)
    text = client.get(reverse("tutor:material-detail", args=[course.pk, material.pk])).text
    assert "<strong>Bold</strong>" in text
    assert "<script>alert" not in text and "&lt;script&gt;" in text
    assert 'href="javascript:' not in text


def test_students_cannot_open_material_that_is_not_ready_but_teachers_can(
    client, course, student, teacher
):
    material = _material(course, "Queued", status="queued")
    url = reverse("tutor:material-detail", args=[course.pk, material.pk])
    client.force_login(student)
    assert client.get(url).status_code == 404
    client.force_login(teacher)
    assert client.get(url).status_code == 200


def test_a_long_material_opens_a_page_at_a_time_with_a_pinned_query_count(
    client, course, student, long_material, django_assert_max_num_queries
):
    client.force_login(student)
    url = reverse("tutor:material-detail", args=[course.pk, long_material.pk])
    # session, user, preferences, course, role, material, count, page, previous passage.
    with django_assert_max_num_queries(10):
        response = client.get(url, {"page": 40})
    text = response.text
    assert text.count('class="passage"') == PASSAGES_PAGE_SIZE
    assert f"Page 40 of {2000 // PASSAGES_PAGE_SIZE + 1}" in text
    assert "Passage 1170." in text and "Passage 1169." not in text and "Passage 1200." not in text
    # Headings open where their section starts, one level per part of the path.
    assert "<h2>Part 23</h2>" not in text  # continued from the previous page
    assert "<h3>Topic 118</h3>" in text


def test_a_citation_link_opens_the_page_that_holds_its_passage(
    client, course, student, long_material, django_assert_max_num_queries
):
    chunk = long_material.chunks.get(position=1234)
    client.force_login(student)
    url = reverse("tutor:material-detail", args=[course.pk, long_material.pk])
    with django_assert_max_num_queries(11):
        response = client.get(url, {"passage": chunk.pk})
    assert f'id="chunk-{chunk.pk}"' in response.text
    assert f"Page {1234 // PASSAGES_PAGE_SIZE + 1} of" in response.text


def test_repeated_words_between_overlapping_passages_are_shown_once():
    previous = "One two three. Four five six seven."
    assert passage_text_without_overlap(previous, "Four five six seven. Eight nine.") == (
        "Eight nine."
    )
    assert passage_text_without_overlap(previous, "Entirely new text.") == "Entirely new text."
