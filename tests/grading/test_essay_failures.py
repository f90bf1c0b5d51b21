"""Every failure of an essay submission answers with a page in our layout that keeps
what the student typed; 403, 404 and 500 are in our layout too (issue 16, item 11)."""

from __future__ import annotations

import io

import pytest
from django.test import Client
from django.urls import reverse

from grading.models import Submission

pytestmark = pytest.mark.django_db

ESSAY_TEXT = 'Plants turn light into sugar <b>& keep</b> the "energy" in bonds.'


def _submit_url(assignment):
    return reverse("grading:submit", args=[assignment.course_id, assignment.pk])


def test_a_nul_character_gets_a_clear_message_and_the_text_back_without_it(
    client, student, assignment
):
    client.force_login(student)
    response = client.post(_submit_url(assignment), {"text": "Plants are\x00 green."})
    assert response.status_code == 422
    body = response.content.decode()
    assert "NUL character" in body
    assert "Plants are green." in body  # the essay, with the NUL removed, ready to send
    assert not Submission.objects.exists()


def test_a_csrf_failure_gives_the_essay_back_in_a_form_with_a_fresh_token(student, assignment):
    client = Client(enforce_csrf_checks=True)
    client.force_login(student)
    response = client.post(_submit_url(assignment), {"text": ESSAY_TEXT})
    assert response.status_code == 403
    body = response.content.decode()
    assert "Your form could not be sent" in body
    assert 'class="site-header"' in body  # our layout, not Django's technical page
    # Escaped like any text, inside a form that posts back to the same place.
    assert "Plants turn light into sugar &lt;b&gt;&amp; keep&lt;/b&gt;" in body
    assert f'action="{_submit_url(assignment)}"' in body
    assert 'name="csrfmiddlewaretoken"' in body
    token = client.cookies["csrftoken"].value
    resent = client.post(
        _submit_url(assignment), {"text": ESSAY_TEXT, "csrfmiddlewaretoken": token}
    )
    assert resent.status_code == 302
    assert Submission.objects.get().text == ESSAY_TEXT


def test_a_csrf_failure_elsewhere_echoes_nothing_posted(student):
    client = Client(enforce_csrf_checks=True)
    client.force_login(student)
    response = client.post(reverse("logout"), {"text": "not an essay form"})
    assert response.status_code == 403
    body = response.content.decode()
    assert "Your form could not be sent" in body
    assert "not an essay form" not in body


def test_a_csrf_failure_after_the_session_expired_keeps_the_essay_and_offers_to_sign_in(
    assignment,
):
    client = Client(enforce_csrf_checks=True)
    response = client.post(_submit_url(assignment), {"text": ESSAY_TEXT})
    assert response.status_code == 403
    body = response.content.decode()
    assert "Plants turn light into sugar" in body
    assert reverse("login") + "?next=" in body


def test_an_essay_over_the_request_limit_gets_our_page_not_a_bare_400(
    client, student, assignment, settings
):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2048
    client.force_login(student)
    response = client.post(_submit_url(assignment), {"text": "word " * 1000})
    assert response.status_code == 413
    body = response.content.decode()
    assert "Too large to send" in body and 'class="site-header"' in body
    assert "kept as a draft in this browser" in body
    assert not Submission.objects.exists()


def test_the_submit_form_keeps_drafts_and_checks_the_size_before_sending(
    client, student, assignment, settings
):
    client.force_login(student)
    page = client.get(reverse("grading:assignment", args=[assignment.course_id, assignment.pk]))
    body = page.content.decode()
    assert "data-draft" in body and "js/drafts.js" in body
    assert f'data-max-bytes="{settings.DATA_UPLOAD_MAX_MEMORY_SIZE - 4096}"' in body


def test_404_is_in_our_layout_with_a_way_back(client, student):
    client.force_login(student)
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    body = response.content.decode()
    assert "Page not found" in body and 'class="site-header"' in body
    assert 'href="/"' in body


def test_403_is_in_our_layout_with_a_way_back(rf, student):
    from django.core.exceptions import PermissionDenied
    from django.views.defaults import permission_denied

    request = rf.get("/somewhere/")
    request.user = student
    response = permission_denied(request, PermissionDenied())
    assert response.status_code == 403
    body = response.content.decode()
    assert "Not allowed" in body and 'class="site-header"' in body and 'href="/"' in body


def test_500_renders_without_a_request_and_in_our_layout(student, assignment, monkeypatch):
    from django.template import loader

    body = loader.get_template("500.html").render()  # as Django's server_error does
    assert "Something went wrong" in body and 'href="/"' in body

    from grading import views

    def broken(**kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(views.selectors, "assignment_for_member", broken)
    client = Client(raise_request_exception=False)
    client.force_login(student)
    response = client.get(reverse("grading:assignment", args=[assignment.course_id, assignment.pk]))
    assert response.status_code == 500
    assert "Something went wrong" in response.content.decode()


def _docx_with_hidden_text() -> bytes:
    import docx
    from docx.shared import Pt, RGBColor

    document = docx.Document()
    paragraph = document.add_paragraph("Plants turn light into chemical energy. ")
    paragraph.add_run("Vanished instruction one.").font.hidden = True
    document.add_paragraph("Leaves are green because of chlorophyll.")
    white = document.add_paragraph("Visible start. ").add_run("White words on white paper.")
    white.font.color.rgb = RGBColor(0xFF, 0xFF, 0xFF)
    tiny = document.add_paragraph("Roots take up water. ").add_run("Tiny one point text.")
    tiny.font.size = Pt(1)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def test_hidden_docx_text_is_found_by_the_parser():
    from material.parsing import document_parse

    document = document_parse(name="essay.docx", data=_docx_with_hidden_text())
    assert document.hidden == [
        "Vanished instruction one.",
        "White words on white paper.",
        "Tiny one point text.",
    ]
    assert "Leaves are green" in document.text


def test_hidden_docx_text_is_flagged_and_marked_in_the_teachers_review(
    client, student, teacher, assignment
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    client.force_login(student)
    upload = SimpleUploadedFile("essay.docx", _docx_with_hidden_text())
    response = client.post(_submit_url(assignment), {"text": "", "upload": upload})
    assert response.status_code == 302
    submission = Submission.objects.get()
    review = submission.review
    assert review.flagged
    hidden = next(flag for flag in review.flags if flag["code"] == "hidden_file")
    assert hidden["passages"] == [
        "Vanished instruction one.",
        "White words on white paper.",
        "Tiny one point text.",
    ]
    client.force_login(teacher)
    page = client.get(
        reverse("grading:review-essay", args=[assignment.course_id, assignment.pk, submission.pk])
    ).content.decode()
    assert "hidden in the file" in page
    assert (
        '<mark class="essay-hidden"><span class="essay-hidden-label">[hidden in the file]</span> '
        "White words on white paper.</mark>"
    ) in page
    assert "Leaves are green because of chlorophyll." in page
