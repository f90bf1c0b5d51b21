"""With no language model configured, the tutor answers in offline mode in a real browser:
the page says so, and the reply quotes course passages whose [n] links open the passage in
the material page. Real Celery worker, real course search over ingested material."""

from __future__ import annotations

import re
import shutil

import pytest
from django.core.files.base import ContentFile
from playwright.sync_api import expect

from tests.browser_helpers import login_through_form
from tests.material.material_files import MARKDOWN, VOLCANO, media_root  # noqa: F401
from tests.tutor.asgi import asgi_server, asgi_server_session  # noqa: F401

pytestmark = [
    pytest.mark.browser,
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("media_root"),
]

REPLY_MS = 30_000


@pytest.fixture
def material(course):
    from material.services import material_ingest, material_upload

    for name, text in (("cells.md", MARKDOWN), ("volcano.md", VOLCANO)):
        material = material_upload(course=course, file=ContentFile(text.encode(), name=name))
        material_ingest(material_id=material.pk)


@pytest.fixture
def tutor_page(page, asgi_server, student, course, material, settings, celery_worker):  # noqa: F811
    """The student's tutor page in offline mode (no LLM_BASE_URL), material ingested and a
    real worker running."""
    settings.LLM_BASE_URL = ""
    login_through_form(page, asgi_server.url, student)
    page.goto(f"{asgi_server.url}/courses/{course.pk}/tutor/")
    return page


def test_offline_tutor_cites_course_passages_that_open_the_material(tutor_page, course):
    page = tutor_page
    expect(page.get_by_role("note")).to_contain_text("Offline mode")
    page.get_by_label("Your message").fill("Where does photosynthesis happen?")
    page.get_by_role("button", name="Send").click()

    reply = page.locator(".tutor-message--assistant .tutor-markdown").last
    expect(reply).to_contain_text("The tutor is offline", timeout=REPLY_MS)
    expect(reply).to_contain_text("chlorophyll")
    expect(page.get_by_text("Offline answer: passages from the course material")).to_be_visible()

    link = reply.get_by_role("link", name="[1]").first
    href = link.get_attribute("href")
    assert href is not None
    assert re.fullmatch(rf"/courses/{course.pk}/materials/\d+/\?passage=\d+#chunk-\d+", href), href
    chunk = href.rsplit("#", 1)[1]
    link.click()
    page.wait_for_url(f"**{href}")
    expect(page.locator(f"#{chunk}")).to_contain_text("chlorophyll")


@pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract-ocr is not installed")
def test_a_photo_is_read_shown_corrected_and_sent(tutor_page):
    from tests.tutor.test_conversation_images import _png

    page = tutor_page
    page.get_by_label("A photo of your work").set_input_files(
        {"name": "work.png", "mimeType": "image/png", "buffer": _png("ANSWER 42", (900, 200))}
    )
    read = page.get_by_label("Text read from your image")
    expect(read).to_have_value(re.compile("42"))
    read.fill("ANSWER 42 chlorophyll")
    page.get_by_label("Your message").fill("Is this right?")
    page.get_by_role("button", name="Send").click()

    question = page.locator(".tutor-message--user").last
    expect(question).to_contain_text("Is this right?")
    expect(question.locator(".tutor-image-text")).to_contain_text("ANSWER 42 chlorophyll")
    reply = page.locator(".tutor-message--assistant .tutor-markdown").last
    expect(reply).to_contain_text("chlorophyll", timeout=REPLY_MS)
