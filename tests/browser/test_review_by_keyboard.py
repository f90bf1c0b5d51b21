"""A teacher reviews 20 essays by keyboard alone, at desktop width and at 390 px: A saves
every criterion as proposed and opens the next essay; 2 and an arrow key pick another
level; Ctrl+Enter saves from inside a box; N and P move between essays. The time per
essay is printed (not asserted: the machine is shared)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from grading import reviews, rubrics, submissions
from grading.models import CriterionScore, Proposal, Review
from tests.browser_helpers import console_errors
from tests.grading.workflow_factories import ESSAY, RUBRIC

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ESSAYS = 20
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"


@pytest.fixture
def queue_of_essays(course, make_user, enrol):
    """An assignment with ``ESSAYS`` essays, each with a finished proposal of the
    language model and one of the learned scorer."""
    assignment = rubrics.assignment_create(course=course, title="Energy essay", rubric=RUBRIC)
    argument, conventions = assignment.criteria.all()
    version = Proposal.objects.model._meta.get_field("rubric_version")
    from grading.models import rubric_version_of

    rubric_version = rubric_version_of(list(assignment.criteria.all()))
    assert version is not None
    for index in range(ESSAYS):
        learner = make_user(f"learner{index:02d}", display_name=f"Learner {index:02d}")
        enrol(learner, course, "student")
        submission = submissions.submission_submit(
            assignment=assignment, learner=learner, text=f"{ESSAY}\n\nEssay number {index}."
        )
        for source, scores in ((Proposal.Source.LLM, (3, 1.5)), (Proposal.Source.SCORER, (2, 1.5))):
            Proposal.objects.update_or_create(
                submission=submission,
                source=source,
                rubric_version=rubric_version,
                defaults={
                    "status": Proposal.Status.DONE,
                    "criteria": {
                        str(argument.pk): {
                            "score": scores[0],
                            "confidence": 0.8,
                            "rationale": "Clear claim, one example.",
                            "evidence": ["light energy into chemical energy"],
                        },
                        str(conventions.pk): {
                            "score": scores[1],
                            "confidence": 0.9,
                            "rationale": "Few errors.",
                            "evidence": [],
                        },
                    },
                },
            )
        reviews.review_refresh(submission=submission)
    return assignment


@pytest.mark.parametrize("width", [1280, 390], ids=["desktop", "phone"])
def test_a_teacher_reviews_twenty_essays_by_keyboard(
    page, login, live_server, teacher, course, queue_of_essays, width
):
    assignment = queue_of_essays
    page.set_viewport_size({"width": width, "height": 900})
    errors = console_errors(page)
    login(teacher)
    page.goto(f"{live_server.url}/courses/{course.pk}/assignments/{assignment.pk}/review/")
    expect(page.get_by_role("heading", name=re.compile("To review"))).to_contain_text("20")
    page.locator(".grading-queue a").first.click()
    expect(page.locator(".grading-nav")).to_contain_text("Essay 1 of 20")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"review-essay-{width}.png"), full_page=True)
    argument, conventions = assignment.criteria.all()
    assert page.evaluate("document.documentElement.scrollWidth") <= width

    # N and P move between essays without saving.
    page.keyboard.press("n")
    expect(page.locator(".grading-nav")).to_contain_text("Essay 2 of 20")
    page.keyboard.press("p")
    expect(page.locator(".grading-nav")).to_contain_text("Essay 1 of 20")

    started = time.perf_counter()
    for index in range(ESSAYS):
        expect(page.locator(".grading-nav")).to_contain_text(f"{ESSAYS - index} to review")
        if index == 4:
            # Take the learned scorer's 2 for Argument: "1" focuses the criterion, an
            # arrow key moves to the level below, the reason box then Ctrl+Enter.
            page.keyboard.press("1")
            expect(page.locator(f"#criterion-{argument.pk} input:checked")).to_be_focused()
            page.keyboard.press("ArrowLeft")
            expect(page.locator(f"#criterion-{argument.pk} input:checked")).to_have_value("2")
            page.locator(f"#criterion-{argument.pk}").get_by_label("Reason for a change").fill(
                "only one example"
            )
            page.keyboard.press("Control+Enter")
        else:
            page.keyboard.press("a")
        page.wait_for_load_state()
    expect(page.get_by_text("Every essay in the queue is reviewed.")).to_be_visible()
    elapsed = time.perf_counter() - started
    print(
        f"\nreview by keyboard at {width}px: {ESSAYS} essays in {elapsed:.2f} s, "
        f"{elapsed / ESSAYS * 1000:.0f} ms per essay"
    )
    assert Review.objects.filter(status=Review.Status.CONFIRMED).count() == ESSAYS
    assert CriterionScore.objects.count() == 2 * ESSAYS
    assert CriterionScore.objects.filter(criterion=argument, score=2).count() == 1
    page.screenshot(path=str(SCREENSHOTS / f"review-queue-done-{width}.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    assert errors == []
