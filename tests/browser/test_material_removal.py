"""Remove in the browser answers at once, also while the worker is writing the passages
(issue 16, item 1: the click hung ~23 s and ended in a 500)."""

from __future__ import annotations

import threading

import pytest
from django.core.files.base import ContentFile
from django.db import connection, transaction
from playwright.sync_api import expect

from material.models import Material
from material.services import material_ingest, material_upload
from tests.material.material_files import MARKDOWN, media_root  # noqa: F401

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("media_root"),
]


def test_remove_says_to_try_again_while_the_passages_are_written_then_removes(
    page, login, live_server, teacher, course
):
    material = material_upload(course=course, file=ContentFile(MARKDOWN.encode(), name="c.md"))
    material = material_ingest(material_id=material.pk)
    locked, release = threading.Event(), threading.Event()

    def worker_writing():  # holds the row lock, as the worker's last transaction does
        try:
            with transaction.atomic():
                Material.objects.select_for_update().get(pk=material.pk)
                locked.set()
                release.wait(timeout=60)
        finally:
            connection.close()

    thread = threading.Thread(target=worker_writing, daemon=True)
    thread.start()
    assert locked.wait(timeout=10)
    login(teacher)
    page.goto(f"{live_server.url}/courses/{course.pk}/materials/")
    page.on("dialog", lambda dialog: dialog.accept())
    row = page.locator(f"#material-{material.pk}")
    try:
        row.get_by_role("button", name="Remove").click()
        notice = page.locator("#material-notice")
        expect(notice).to_contain_text("being saved right now")  # long before the release
        expect(row).to_be_visible()
    finally:
        release.set()
        thread.join(timeout=10)
    page.locator(f"#material-{material.pk}").get_by_role("button", name="Remove").click()
    expect(page.locator(f"#material-{material.pk}")).to_have_count(0)
    expect(page.locator("#material-notice")).to_have_text("")
    assert not Material.objects.exists()
