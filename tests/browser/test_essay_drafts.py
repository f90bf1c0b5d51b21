"""Nothing typed is lost, in a real browser under the strict CSP: an essay draft is kept
as it is typed and restored on return, cleared once submitted, and an expired session
answers with a page in our layout that gives the essay back (issue 16, item 11)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from grading import injection, rubrics
from grading.models import Submission
from tests.grading.workflow_factories import ESSAY, RUBRIC

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def assignment(course):
    return rubrics.assignment_create(course=course, title="Why it matters", rubric=RUBRIC)


def test_a_draft_survives_leaving_the_page_and_an_expired_session(
    page, login, live_server, student, course, assignment
):
    violations: list[str] = []
    page.on(
        "console",
        lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None,
    )
    # The live server runs in this process: load the embedding model and the injection
    # classifier once here, so the submission below answers as fast as a warm server.
    injection.injection_scan("A warm-up sentence.")
    url = f"{live_server.url}/courses/{course.pk}/assignments/{assignment.pk}/"
    login(student)
    page.goto(url)
    essay = page.get_by_role("textbox", name="Your essay")
    essay.fill(ESSAY)
    page.wait_for_timeout(800)  # the draft is saved after a pause in typing

    # Away and back: the draft is restored, and the page says so.
    page.goto(f"{live_server.url}/")
    page.goto(url)
    expect(essay).to_have_value(ESSAY)
    expect(page.locator("[data-draft-status]")).to_contain_text("Your unsent draft was restored")

    # The session expires (cookies gone) before the student submits: our page, essay kept.
    page.context.clear_cookies()
    page.get_by_role("button", name="Submit").click()
    expect(page.get_by_role("heading", name="Your form could not be sent")).to_be_visible()
    expect(page.locator("textarea#id_text")).to_have_value(ESSAY)
    expect(page.get_by_role("link", name="Sign in again")).to_be_visible()
    assert not Submission.objects.exists()

    # Signed in again, the draft is back on the assignment; once submitted it is cleared.
    login(student)
    page.goto(url)
    expect(essay).to_have_value(ESSAY)
    page.get_by_role("button", name="Submit").click()
    expect(page.locator(".messages")).to_contain_text("Your essay was submitted.")
    assert Submission.objects.get().text == ESSAY
    page.goto(url)
    expect(page.get_by_role("textbox", name="Your essay")).to_have_value("")
    assert violations == []
