"""A ``next`` address leads only back to this site (issue 16, item 12)."""

from __future__ import annotations

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db

FOREIGN = [
    "https://evil.example/phish",
    "//evil.example/phish",
    "/\\evil.example/phish",
    "http:evil.example",
    "javascript:alert(1)",
]


@pytest.mark.parametrize("target", FOREIGN)
def test_the_consent_form_never_redirects_to_another_host(client, student, target):
    client.force_login(student)
    response = client.post(reverse("consent"), {"decision": "grant", "next": target})
    assert response.status_code == 302
    assert response.url == reverse("consent")


@pytest.mark.parametrize("target", FOREIGN)
def test_the_consent_page_does_not_carry_a_foreign_next_into_its_form(client, student, target):
    client.force_login(student)
    response = client.get(reverse("consent"), {"next": target})
    assert response.status_code == 200
    assert response.context["next"] == ""


def test_the_consent_form_returns_to_a_page_of_this_site(client, student, course):
    client.force_login(student)
    here = f"/courses/{course.pk}/"
    assert client.get(reverse("consent"), {"next": here}).context["next"] == here
    response = client.post(reverse("consent"), {"decision": "grant", "next": here})
    assert response.url == here


@pytest.mark.parametrize("target", FOREIGN)
def test_the_login_form_never_redirects_to_another_host(client, student, target):
    response = client.post(
        reverse("login"),
        {"username": "student", "password": student.raw_password, "next": target},
    )
    assert response.status_code == 302
    assert "evil.example" not in response.url
    assert not response.url.startswith(("javascript:", "http:"))


@pytest.mark.parametrize("target", FOREIGN)
def test_logging_out_never_redirects_to_another_host(client, student, target):
    client.force_login(student)
    response = client.post(f"{reverse('logout')}?next={target}", {"next": target})
    assert response.status_code == 302
    assert response.url == reverse("login")


@pytest.mark.parametrize("target", FOREIGN)
def test_choosing_a_language_never_redirects_to_another_host(client, target):
    response = client.post(reverse("set_language"), {"language": "es", "next": target})
    assert response.status_code == 302
    assert "evil.example" not in response.url
    assert not response.url.startswith(("javascript:", "http:"))


def test_no_view_of_ours_reads_next_without_safe_next_url():
    """Every ``next`` read in our code goes through config/safe_redirect.py (Django's own
    login, logout and set_language views check theirs, tested above)."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    unsafe = []
    ours = [d for d in root.iterdir() if d.is_dir() and (d / "__init__.py").exists()]
    assert {"config", "learners", "tutor", "grading"} <= {d.name for d in ours}
    for path in (p for d in ours for p in d.rglob("*.py")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            reads_next = re.search(r"""(GET|POST|query_params|data)\.get\(\s*["']next["']""", line)
            if reads_next and "safe_next_url(" not in line:
                unsafe.append(f"{path.relative_to(root)}:{number}")
    assert unsafe == []
