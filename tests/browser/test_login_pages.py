from __future__ import annotations

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_student_logs_in_and_sees_their_courses(page, login, student, course):
    login(student)
    assert page.get_by_role("heading", name="My courses").is_visible()
    assert page.get_by_role("link", name=course.title).is_visible()
    assert page.get_by_role("heading", name="Courses I teach").count() == 0


def test_teacher_logs_in_and_sees_the_courses_they_teach(page, login, teacher, course):
    login(teacher)
    assert page.get_by_role("heading", name="Courses I teach").is_visible()
    page.get_by_role("link", name=course.title).click()
    assert page.get_by_text("You teach this course.").is_visible()


def test_admin_logs_in_and_reaches_administration(page, login, staff_user):
    login(staff_user)
    page.get_by_role("link", name="Open administration").click()
    page.wait_for_url("**/admin/")
    assert page.locator("#content").get_by_role("link", name="Courses", exact=True).is_visible()


def test_wrong_password_shows_a_clear_error(page, live_server, student):
    page.goto(f"{live_server.url}/login/")
    page.get_by_label("Username").fill(student.username)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in").click()
    assert page.get_by_role("alert").inner_text().startswith("That username and password")


def test_logging_out_returns_to_the_login_page(page, login, student):
    login(student)
    page.get_by_role("button", name="Log out").click()
    assert page.get_by_role("heading", name="Log in").is_visible()


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
