from __future__ import annotations

import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from tests.tutor.material_files import MARKDOWN, VOLCANO, media_root  # noqa: F401
from tutor.models import Material
from tutor.services import material_ingest, material_upload

pytestmark = pytest.mark.usefixtures("media_root")


def md_file(name: str, text: str) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, text.encode(), content_type="text/markdown")


@pytest.fixture
def ready(course):
    material = material_upload(course=course, file=ContentFile(MARKDOWN.encode(), name="c.md"))
    return material_ingest(material_id=material.pk)


def test_the_teacher_uploads_several_files_with_htmx(client, course, teacher):
    client.force_login(teacher)
    response = client.post(
        reverse("tutor:material-upload", args=[course.pk]),
        {"files": [md_file("cells.md", MARKDOWN), md_file("volcano.md", VOLCANO)]},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert "<html" not in body  # the list partial only
    assert 'hx-trigger="every 2s"' in body  # it keeps polling while they are queued
    assert "cells.md" in body and "volcano.md" in body
    assert Material.objects.filter(course=course, status="queued").count() == 2


def test_the_list_stops_polling_when_everything_is_done(client, course, teacher, ready):
    client.force_login(teacher)
    response = client.get(reverse("tutor:materials", args=[course.pk]), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert "every 2s" not in response.content.decode()
    assert "Ready" in response.content.decode()


def test_students_cannot_open_the_material_page_or_upload(client, course, student):
    client.force_login(student)
    assert client.get(reverse("tutor:materials", args=[course.pk])).status_code == 404
    response = client.post(
        reverse("tutor:material-upload", args=[course.pk]), {"files": [md_file("x.md", VOLCANO)]}
    )
    assert response.status_code == 404
    assert not Material.objects.exists()


def test_search_page_highlights_and_links_to_the_passage(client, course, student, ready):
    client.force_login(student)
    response = client.get(reverse("tutor:search", args=[course.pk]), {"q": "chlorophyll"})
    body = response.content.decode()
    assert "<mark>chlorophyll</mark>" in body
    chunk = ready.chunks.get(text__contains="chlorophyll")
    link = reverse("tutor:material-detail", args=[course.pk, ready.pk])
    link += f"?passage={chunk.pk}#chunk-{chunk.pk}"
    assert link.replace("&", "&amp;") in body
    detail = client.get(link.split("#")[0]).content.decode()
    assert f'id="chunk-{chunk.pk}"' in detail


def test_the_api_searches_and_is_in_the_schema(client, course, student, ready):
    client.force_login(student)
    url = reverse("tutor:api-search", args=[course.pk])
    response = client.get(url, {"q": "Where is ATP made?", "k": 2})
    assert response.status_code == 200
    data = response.json()
    assert len(data) == 2
    assert {"chunk_id", "title", "section", "page", "text", "score", "url", "headline"} <= set(
        data[0]
    )
    assert client.get(url, {"q": "", "k": 5}).json() == []
    assert client.get(url, {"q": "x", "k": 0}).status_code == 400
    schema = client.get(reverse("api-schema"), {"format": "json"}).json()
    assert "/api/courses/{course_id}/search" in schema["paths"]


def test_the_api_upload_queues_files_for_teachers_only(client, course, teacher, student):
    url = reverse("tutor:api-materials", args=[course.pk])
    client.force_login(student)
    assert client.post(url, {"files": [md_file("a.md", VOLCANO)]}).status_code == 404
    client.force_login(teacher)
    response = client.post(url, {"files": [md_file("a.md", VOLCANO), md_file("e.txt", "")]})
    assert response.status_code == 201
    assert [(m["original_name"], m["status"]) for m in response.json()] == [
        ("a.md", "queued"),
        ("e.txt", "failed"),
    ]


def test_strangers_cannot_search_through_the_api(client, course, other_student, ready):
    client.force_login(other_student)
    response = client.get(reverse("tutor:api-search", args=[course.pk]), {"q": "glucose"})
    assert response.status_code == 404
