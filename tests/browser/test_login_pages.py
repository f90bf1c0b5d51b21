from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_student_logs_in_and_sees_their_courses(page, login, student, course):
    login(student)
    expect(page.get_by_role("heading", name="My courses")).to_be_visible()
    expect(page.get_by_role("link", name=course.title)).to_be_visible()
    expect(page.get_by_role("heading", name="Courses I teach")).to_have_count(0)


def test_teacher_logs_in_and_sees_the_courses_they_teach(page, login, teacher, course):
    login(teacher)
    expect(page.get_by_role("heading", name="Courses I teach")).to_be_visible()
    page.get_by_role("link", name=course.title).click()
    expect(page.get_by_text("You teach this course.")).to_be_visible()


def test_admin_logs_in_and_reaches_administration(page, login, staff_user):
    login(staff_user)
    # The staff home links every staff page; Django's admin is one of them.
    page.get_by_role("link", name="Open administration").click()
    page.wait_for_url("**/staff/")
    page.get_by_role("link", name="Django administration (courses, people, roles)").click()
    page.wait_for_url("**/admin/")
    courses = page.locator("#content").get_by_role("link", name="Courses", exact=True)
    expect(courses).to_be_visible()


def test_wrong_password_shows_a_clear_error(page, live_server, student):
    page.goto(f"{live_server.url}/login/")
    page.get_by_label("Username").fill(student.username)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text(re.compile(r"^\s*That username and password"))


def test_logging_out_returns_to_the_login_page(page, login, student):
    login(student)
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()


def test_pages_run_under_a_strict_content_security_policy(page, login, student):
    violations: list[str] = []
    page.on(
        "console",
        lambda message: (
            violations.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    login(student)
    response = page.goto(page.url)
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert page.evaluate("typeof htmx") == "object"  # our own htmx still loads
    assert violations == []
