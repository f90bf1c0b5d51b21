"""A teacher uploads several files at once and watches them become ready or fail, live."""

from __future__ import annotations

import pytest

from tests.material.material_files import MARKDOWN, VOLCANO

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_the_material_list_updates_live_from_queued_to_ready_or_failed(
    page, login, live_server, teacher, course, celery_worker
):
    from material.models import Chunk, Material

    login(teacher)
    page.goto(f"{live_server.url}/courses/{course.pk}/materials/")
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    page.get_by_label("Files (drag and drop here, or choose; several at once)").set_input_files(
        [
            {"name": "cells.md", "mimeType": "text/markdown", "buffer": MARKDOWN.encode()},
            {"name": "volcanoes.txt", "mimeType": "text/plain", "buffer": VOLCANO.encode()},
            {"name": "empty.txt", "mimeType": "text/plain", "buffer": b""},
        ]
    )
    page.get_by_role("button", name="Upload").click()

    rows = page.locator("#material-list tbody tr")
    rows.nth(2).wait_for()
    # The list refreshes itself (htmx polling) until every file has an outcome.
    page.locator("#material-list .status-ready").nth(1).wait_for(timeout=90_000)
    page.locator("#material-list .status-failed").first.wait_for(timeout=30_000)
    assert navigations == []  # no reload: the page itself never navigated

    failed = page.locator("#material-list .status-failed").inner_text()
    assert "empty" in failed.lower()
    assert (
        page.get_by_role("link", name="cells").is_visible()
        or page.get_by_role("link", name="Cell Energy").is_visible()
    )
    # The bad file left no chunks; the good ones are searchable.
    empty = Material.objects.get(original_name="empty.txt")
    assert empty.status == Material.Status.FAILED
    assert not Chunk.objects.filter(material=empty).exists()
    assert Chunk.objects.filter(material__course=course).count() >= 2
