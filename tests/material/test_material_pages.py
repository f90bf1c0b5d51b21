from __future__ import annotations

import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from material.models import Material
from material.services import material_ingest, material_upload
from tests.material.material_files import MARKDOWN, VOLCANO, media_root  # noqa: F401

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


def test_a_search_result_names_its_material_and_section_once(client, course, student):
    # The document's top heading is its title and begins every section path.
    material = material_upload(course=course, file=ContentFile(MARKDOWN.encode(), name="c.md"))
    material.title = "Cell Energy"
    material.save(update_fields=["title"])
    material_ingest(material_id=material.pk)
    client.force_login(student)
    body = client.get(reverse("tutor:search", args=[course.pk]), {"q": "chlorophyll"}).text
    assert "Cell Energy — Photosynthesis</a>" in body
    assert "Cell Energy › " not in body


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
    queued = response.json()[0]
    assert (queued["step"], queued["passages_done"], queued["passages_total"]) == ("", 0, 0)
    assert response.json()[1]["can_process_again"] is False  # an empty file stays empty


def test_strangers_cannot_search_through_the_api(client, course, other_student, ready):
    client.force_login(other_student)
    response = client.get(reverse("tutor:api-search", args=[course.pk]), {"q": "glucose"})
    assert response.status_code == 404


def test_a_teacher_renames_a_material(client, course, teacher, ready):
    client.force_login(teacher)
    url = reverse("tutor:material-rename", args=[course.pk, ready.pk])
    response = client.post(url, {"title": "  Cells and   energy "}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert "Cells and energy" in response.content.decode()
    ready.refresh_from_db()
    assert ready.title == "Cells and energy"
    response = client.post(url, {"title": "   "}, HTTP_HX_REQUEST="true")
    assert "Give the material a title." in response.content.decode()
    response = client.post(url, {"title": "x" * 301})
    assert response.status_code == 302
    ready.refresh_from_db()
    assert ready.title == "Cells and energy"
    # The title the teacher chose survives processing the file again.
    ready.status, ready.failure_retryable = Material.Status.FAILED, True
    ready.save()
    client.post(reverse("tutor:material-reingest", args=[course.pk, ready.pk]))
    assert material_ingest(material_id=ready.pk).title == "Cells and energy"


def test_process_again_is_offered_only_where_it_can_help(client, course, teacher, ready):
    from tests.material.material_files import pdf_bytes

    empty = material_upload(course=course, file=ContentFile(b"\n\n", name="empty.txt"))
    empty = material_ingest(material_id=empty.pk)
    scan = material_upload(course=course, file=ContentFile(pdf_bytes([""]), name="scan.pdf"))
    scan = material_ingest(material_id=scan.pk)
    assert empty.status == scan.status == Material.Status.FAILED
    assert not empty.can_process_again and not scan.can_process_again
    broken = material_upload(course=course, file=ContentFile(b"# Hi\n\nText.", name="w.md"))
    Material.objects.filter(pk=broken.pk).update(
        status=Material.Status.FAILED, failure_retryable=True, error="Worker died."
    )
    client.force_login(teacher)
    page = client.get(reverse("tutor:materials", args=[course.pk])).content.decode()
    assert page.count("Process again") == 1
    assert f"/materials/{broken.pk}/reingest/" in page
    # Asked anyway (an old page), a file that cannot go differently is not queued again.
    response = client.post(
        reverse("tutor:material-reingest", args=[course.pk, scan.pk]), HTTP_HX_REQUEST="true"
    )
    assert "would end the same way" in response.content.decode()
    scan.refresh_from_db()
    assert scan.status == Material.Status.FAILED
    client.post(reverse("tutor:material-reingest", args=[course.pk, broken.pk]))
    broken.refresh_from_db()
    assert broken.status == Material.Status.QUEUED and not broken.failure_retryable
