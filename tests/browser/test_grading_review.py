"""Essay grading in a real browser, with a real worker and the LLM test server: a student
submits, the teacher reviews (override with a reason, approve, bulk approve), releases, and
the student reads the feedback and asks for a regrade."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from grading import rubrics, submissions
from grading.models import Proposal, Review
from tests.grading.workflow_factories import ESSAY, RUBRIC, grade_reply

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def _wait_graded(submission_filter, count: int = 1) -> None:
    deadline = time.monotonic() + 90  # a busy CPU grades slowly
    while time.monotonic() < deadline:
        if Proposal.objects.filter(status="done", **submission_filter).count() >= count:
            return
        time.sleep(0.2)
    states = list(Proposal.objects.values_list("submission_id", "status", "error"))
    raise AssertionError(f"the worker did not grade the essays: {states}")


@pytest.fixture
def assignment(course):
    return rubrics.assignment_create(course=course, title="Why it matters", rubric=RUBRIC)


def _logout(page):
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/login/")


def test_teacher_reviews_overrides_bulk_approves_and_releases_and_student_asks_for_regrade(
    page,
    login,
    live_server,
    celery_worker,
    llm_server,
    student,
    teacher,
    make_user,
    enrol,
    course,
    assignment,
):
    violations: list[str] = []
    page.on(
        "console",
        lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None,
    )
    llm_server.script(json_reply=grade_reply(assignment, confidence=0.95))
    classmate = make_user("classmate", display_name="Cleo Classmate")
    enrol(classmate, course, "student")
    submissions.submission_submit(assignment=assignment, learner=classmate, text=ESSAY)
    assignment_url = f"{live_server.url}/courses/{course.pk}/assignments/{assignment.pk}/"

    # The student writes the essay and sees its word count as they type.
    login(student)
    page.goto(assignment_url)
    page.get_by_role("textbox", name="Your essay").fill(ESSAY)
    expect(page.get_by_text(f"{len(ESSAY.split())} words")).to_be_visible()
    page.get_by_role("button", name="Submit").click()
    expect(page.locator(".messages")).to_contain_text("Your essay was submitted.")
    _wait_graded({"submission__assignment": assignment}, count=2)
    _logout(page)

    # The teacher reviews the student's essay: evidence is highlighted.
    login(teacher)
    page.goto(f"{assignment_url}review/")
    expect(page.locator("#scorer-status")).to_contain_text("once you have confirmed 10 essays")
    expect(page.get_by_role("link", name="Sam Student")).to_be_visible()
    page.get_by_role("link", name="Sam Student").click()
    expect(page.locator(".grading-essay mark").first).to_have_text(
        "light energy into chemical energy"
    )
    argument = assignment.criteria.get(name="Argument")
    conventions = assignment.criteria.get(name="Conventions")
    # One form for every criterion: the level descriptors sit beside the scores.
    box = page.locator(f"#criterion-{argument.pk}")
    expect(box).to_contain_text("A clear, well-supported argument")
    box.get_by_label("1", exact=True).check()
    page.get_by_role("button", name="Save all", exact=True).click()
    expect(page.locator(f"#criterion-{argument.pk}").get_by_role("alert")).to_contain_text(
        "Give a reason"
    )
    box = page.locator(f"#criterion-{argument.pk}")
    box.get_by_label("Reason for a change").fill("The claim is not supported.")
    page.get_by_role("button", name="Save all", exact=True).click()
    expect(page.locator(f"#criterion-{argument.pk} .grading-final")).to_contain_text("1")
    expect(page.locator(f"#criterion-{conventions.pk} .grading-final")).to_contain_text("1.5")
    page.locator(".grading-history summary").click()
    expect(page.locator(".grading-history")).to_contain_text(
        "Argument: the AI proposed 3; Ms. Tanaka set 1: “The claim is not supported.”"
    )
    page.get_by_role("button", name="Release to student").click()
    expect(page.locator(".messages")).to_contain_text("Grade released to the student.")

    # Bulk approval confirms the confident classmate's essay; then release it.
    page.goto(f"{assignment_url}review/")
    page.get_by_label(re.compile("at least this confident")).fill("0.9")
    page.get_by_role("button", name="Bulk approve").click()
    expect(page.locator(".messages")).to_contain_text("1 essays approved.")
    page.get_by_role("button", name="Release confirmed grades").click()
    expect(page.locator(".messages")).to_contain_text("1 grades released.")
    assert set(Review.objects.values_list("status", flat=True)) == {"released"}
    _logout(page)

    # The student reads the grade, the teacher's comment and evidence, and asks again.
    login(student)
    page.goto(assignment_url)
    expect(page.locator(".grading-total")).to_have_text("2.5 / 6")
    expect(page.get_by_text("Add an example from an experiment.")).to_be_visible()
    expect(page.locator(".grading-released blockquote").first).to_have_text(
        "light energy into chemical energy"
    )
    page.get_by_label("What should your teacher look at again?").fill(
        "My second paragraph supports the claim."
    )
    page.get_by_role("button", name="Request a regrade").click()
    expect(page.locator(".messages")).to_contain_text("Your teacher will look at your essay again.")
    review = Review.objects.get(submission__learner=student)
    assert review.status == Review.Status.PENDING
    assert violations == []
