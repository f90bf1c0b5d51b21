"""Every route × method × role, with the expected outcome in one table.

Routes are enumerated from the URL resolver, so a new route that is missing from
``MATRIX`` fails ``test_every_route_is_in_the_matrix``. "allow" means a 2xx (or a
redirect that is part of the page's normal flow, listed per route); "deny" means the
visitor is sent to log in, or gets 403, 404 or 405 — never a 2xx.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

ROLES = ("anonymous", "student", "other_student", "teacher", "other_teacher", "admin")
EVERYONE = frozenset(ROLES)
SIGNED_IN = EVERYONE - {"anonymous"}
COURSE_MEMBERS = frozenset({"student", "teacher", "admin"})
COURSE_TEACHERS = frozenset({"teacher", "admin"})
ADMINS = frozenset({"admin"})
NOBODY = frozenset()

# Prefixes whose routes guard themselves and are covered by one representative row.
DELEGATED_PREFIXES = {
    "admin/": "Django admin checks is_staff on every view; admin:index stands for it",
    "i18n/": "Django's set_language view; POST only, no data of anyone's",
}


@dataclass(frozen=True)
class Rule:
    """Who gets a 2xx for each method; methods not listed must be refused for everyone."""

    allowed: dict[str, frozenset] = field(default_factory=dict)
    kwargs: str = ""  # "course" fills course_id with the course under test


MATRIX: dict[str, Rule] = {
    "": Rule({"GET": SIGNED_IN}),
    "courses/<int:course_id>/": Rule({"GET": COURSE_MEMBERS}, kwargs="course"),
    "consent/": Rule({"GET": SIGNED_IN, "POST": NOBODY}),  # POST redirects after saving
    "healthz": Rule({"GET": NOBODY}),
    # Prometheus scrapes it; the proxy hides it from the public, METRICS_TOKEN guards it.
    "metrics": Rule({"GET": EVERYONE}),  # 200 or 503 for everyone: checked separately
    "login/": Rule({"GET": EVERYONE, "POST": EVERYONE}),
    "logout/": Rule({"POST": NOBODY}),  # a redirect for everyone, never a page
    "api/schema/": Rule({"GET": SIGNED_IN}),
}

PUBLIC_STATUS_ROUTES = {"healthz"}


def _routes(patterns=None, prefix: str = "") -> list[str]:
    routes: list[str] = []
    for pattern in patterns if patterns is not None else get_resolver().url_patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            routes.extend(_routes(pattern.url_patterns, route))
        elif isinstance(pattern, URLPattern):
            routes.append(route)
    return routes


def application_routes() -> list[str]:
    return sorted(
        {
            route
            for route in _routes()
            if not any(route.startswith(prefix) for prefix in DELEGATED_PREFIXES)
        }
    )


def test_every_route_is_in_the_matrix():
    missing = [route for route in application_routes() if route not in MATRIX]
    assert not missing, f"routes with no row in the authorization matrix: {missing}"


def test_the_matrix_has_no_stale_rows():
    stale = sorted(set(MATRIX) - set(application_routes()))
    assert not stale, f"matrix rows for routes that no longer exist: {stale}"


@pytest.fixture
def cast(student, other_student, teacher, other_teacher, staff_user, course):
    return {
        "anonymous": None,
        "student": student,
        "other_student": other_student,
        "teacher": teacher,
        "other_teacher": other_teacher,
        "admin": staff_user,
        "_course": course,
    }


def _url(route: str, rule: Rule, cast: dict) -> str:
    path = route
    if rule.kwargs == "course":
        path = path.replace("<int:course_id>", str(cast["_course"].pk))
    assert "<" not in path, f"the matrix does not know how to fill {route}"
    return "/" + path


METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


@pytest.mark.django_db
@pytest.mark.parametrize("role", ROLES)
def test_no_role_gets_a_2xx_it_should_not(client, cast, role):
    user = cast[role]
    unexpected = []
    checked = 0
    for route, rule in MATRIX.items():
        if route in PUBLIC_STATUS_ROUTES:
            continue
        url = _url(route, rule, cast)
        for method in METHODS:
            if user is not None:
                client.force_login(user)  # again: the logout row ends the session
            response = getattr(client, method.lower())(url)
            checked += 1
            ok = 200 <= response.status_code < 300
            should = role in rule.allowed.get(method, NOBODY)
            if ok != should:
                unexpected.append(
                    (
                        method,
                        url,
                        response.status_code,
                        "expected 2xx" if should else "expected refusal",
                    )
                )
            assert response.status_code < 500, (method, url, response.status_code)
    assert checked >= len(MATRIX) - len(PUBLIC_STATUS_ROUTES)
    assert not unexpected, unexpected


@pytest.mark.django_db
@pytest.mark.parametrize("role", ROLES)
def test_admin_pages_are_for_staff_only(client, cast, role):
    user = cast[role]
    if user is not None:
        client.force_login(user)
    response = client.get("/admin/")
    assert (response.status_code == 200) == (role == "admin")
