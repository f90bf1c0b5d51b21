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

from tests.tutor.test_conversation_access import ROUTES as CONVERSATION_ROUTES

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
    kwargs: str = ""  # "course" fills course_id with the course under test; "grading" also
    # fills assignment, criterion and submission ids


_GA = "courses/<int:course_id>/assignments/<int:assignment_id>/"
_GE = _GA + "review/<int:submission_id>/"

MATRIX: dict[str, Rule] = {
    "": Rule({"GET": SIGNED_IN}),
    "courses/<int:course_id>/": Rule({"GET": COURSE_MEMBERS}, kwargs="course"),
    "consent/": Rule({"GET": SIGNED_IN, "POST": NOBODY}),  # POST redirects after saving
    "privacy/": Rule({"GET": SIGNED_IN}),
    "privacy/export/": Rule({"POST": SIGNED_IN}),  # the zip of one's own data
    # Without the typed username the erasure is refused with a redirect.
    "privacy/erase/": Rule({"POST": NOBODY}),
    "healthz": Rule({"GET": NOBODY}),  # 200 or 503 for everyone: checked separately
    # Prometheus scrapes it with METRICS_TOKEN; signed in, only staff may read it.
    "metrics": Rule({"GET": ADMINS}),
    "login/": Rule({"GET": EVERYONE, "POST": EVERYONE}),
    "logout/": Rule({"POST": NOBODY}),  # a redirect for everyone, never a page
    "api/schema/": Rule({"GET": SIGNED_IN}),
    "staff/usage/courses/<int:course_id>/": Rule({"GET": ADMINS}, kwargs="course"),
    # --- Learning (learning/urls.py); POSTs with an empty body are refused or
    # redirect, except the two that re-render a form.
    "profile/": Rule({"GET": SIGNED_IN, "POST": SIGNED_IN}),  # an empty form re-renders
    "courses/<int:course_id>/concepts/": Rule({"GET": COURSE_TEACHERS}, kwargs="course"),
    "courses/<int:course_id>/concepts/save/": Rule({"POST": NOBODY}, kwargs="course"),
    "courses/<int:course_id>/concepts/delete/": Rule({"POST": NOBODY}, kwargs="course"),
    "courses/<int:course_id>/concepts/suggest/": Rule({"POST": COURSE_TEACHERS}, kwargs="course"),
    "courses/<int:course_id>/concepts/accept/": Rule({"POST": NOBODY}, kwargs="course"),
    "courses/<int:course_id>/questions/": Rule({"GET": COURSE_TEACHERS}, kwargs="course"),
    "courses/<int:course_id>/questions/generate/": Rule({"POST": NOBODY}, kwargs="course"),
    "courses/<int:course_id>/questions/review/": Rule({"POST": NOBODY}, kwargs="course"),
    "courses/<int:course_id>/questions/approve/": Rule({"POST": NOBODY}, kwargs="course"),
    "courses/<int:course_id>/practice/": Rule({"GET": COURSE_MEMBERS}, kwargs="course"),
    "courses/<int:course_id>/practice/answer/": Rule({"POST": NOBODY}, kwargs="course"),
    "courses/<int:course_id>/progress/": Rule({"GET": COURSE_MEMBERS}, kwargs="course"),
    "courses/<int:course_id>/progress/class/": Rule({"GET": COURSE_TEACHERS}, kwargs="course"),
    "courses/<int:course_id>/progress/students/<int:student_id>/": Rule(
        {"GET": COURSE_TEACHERS}, kwargs="course"
    ),
    "api/courses/<int:course_id>/mastery/": Rule({"GET": COURSE_MEMBERS}, kwargs="course"),
    "api/courses/<int:course_id>/practice/next/": Rule({"GET": COURSE_MEMBERS}, kwargs="course"),
    "api/courses/<int:course_id>/practice/answers/": Rule({"POST": NOBODY}, kwargs="course"),
    "api/courses/<int:course_id>/reviews/due/": Rule({"GET": COURSE_MEMBERS}, kwargs="course"),
    "api/courses/<int:course_id>/progress/class/": Rule({"GET": COURSE_TEACHERS}, kwargs="course"),
    # --- Grading (grading/urls.py): "grading" fills an assignment, criterion and the
    # student's submission. POSTs with an empty body answer 422/400 or redirect.
    "courses/<int:course_id>/assignments/": Rule({"GET": COURSE_MEMBERS}, kwargs="grading"),
    "courses/<int:course_id>/assignments/new/": Rule(
        {"GET": COURSE_TEACHERS, "POST": NOBODY}, kwargs="grading"
    ),
    _GA: Rule({"GET": COURSE_MEMBERS}, kwargs="grading"),
    _GA + "rubric.json": Rule({"GET": COURSE_TEACHERS}, kwargs="grading"),
    _GA + "submit/": Rule({"POST": NOBODY}, kwargs="grading"),
    _GA + "regrade/": Rule({"POST": NOBODY}, kwargs="grading"),
    _GA + "review/": Rule({"GET": COURSE_TEACHERS}, kwargs="grading"),
    _GA + "review/bulk-approve/": Rule({"POST": NOBODY}, kwargs="grading"),
    _GA + "review/release/": Rule({"POST": NOBODY}, kwargs="grading"),
    _GE: Rule({"GET": COURSE_TEACHERS}, kwargs="grading"),
    _GE + "criteria/<int:criterion_id>/": Rule({"POST": NOBODY}, kwargs="grading"),
    _GE + "save/": Rule({"POST": NOBODY}, kwargs="grading"),
    _GE + "release/": Rule({"POST": NOBODY}, kwargs="grading"),
    _GE + "retry/": Rule({"POST": NOBODY}, kwargs="grading"),
    _GE + "feedback/": Rule({"POST": NOBODY}, kwargs="grading"),
    _GA + "agreement/": Rule({"GET": COURSE_TEACHERS}, kwargs="grading"),
    "api/" + _GA + "review-queue/": Rule({"GET": COURSE_TEACHERS}, kwargs="grading"),
    "api/" + _GA + "submissions/": Rule({"POST": NOBODY}, kwargs="grading"),
    "api/" + _GA + "grade/": Rule({"GET": frozenset({"student"})}, kwargs="grading"),
    "api/" + _GA + "submissions/<int:submission_id>/criteria/<int:criterion_id>/": Rule(
        {"POST": NOBODY}, kwargs="grading"
    ),
    "api/" + _GA + "agreement/": Rule({"GET": COURSE_TEACHERS}, kwargs="grading"),
}

# --- Course material (material/urls.py): "material" makes a fresh material per request,
# because some rows delete it.
_TM = "courses/<int:course_id>/materials/"
_TMA = "api/courses/<int:course_id>/materials"
MATRIX.update(
    {
        _TM: Rule({"GET": COURSE_TEACHERS}, kwargs="material"),
        _TM + "upload/": Rule({"POST": NOBODY}, kwargs="material"),  # no files: refused
        # The matrix's material is still queued: students read ready material only.
        _TM + "<int:material_id>/": Rule({"GET": COURSE_TEACHERS}, kwargs="material"),
        _TM + "<int:material_id>/delete/": Rule({"POST": NOBODY}, kwargs="material"),
        _TM + "<int:material_id>/reingest/": Rule({"POST": NOBODY}, kwargs="material"),
        # An empty title is refused with a redirect back to the list.
        _TM + "<int:material_id>/rename/": Rule({"POST": NOBODY}, kwargs="material"),
        "courses/<int:course_id>/search/": Rule({"GET": COURSE_MEMBERS}, kwargs="material"),
        "api/courses/<int:course_id>/search": Rule({"GET": COURSE_MEMBERS}, kwargs="material"),
        _TMA: Rule({"GET": COURSE_MEMBERS}, kwargs="material"),  # POST without files: 400
        _TMA + "/<int:material_id>": Rule({"GET": COURSE_MEMBERS}, kwargs="material"),
    }
)
# --- Tutoring conversations: their rows live next to their factories and are merged here;
# a conversation is its learner's alone, so even the course teacher gets 404.
MATRIX.update(
    {route: Rule(allowed, kwargs="conversation") for route, allowed in CONVERSATION_ROUTES.items()}
)

# --- LTI (lti/urls.py): the launch endpoints answer an LMS, not a signed-in person;
# without a valid launch each is a refusal page. The JWKS is public by design.
MATRIX.update(
    {
        "lti/login/": Rule({"GET": NOBODY, "POST": NOBODY}),
        "lti/launch/": Rule({"POST": NOBODY}),
        "lti/jwks/": Rule({"GET": EVERYONE}),
        "lti/landing/": Rule({"GET": NOBODY}),
        "lti/resume/": Rule({"POST": NOBODY}),
        "lti/deep-link/": Rule({"GET": NOBODY, "POST": NOBODY}),
        # Dynamic Registration: only a one-time link made by lti_registration_link works,
        # whoever is signed in (a staff session included); an unknown token is a 404 page.
        "lti/register/<token>/": Rule({"GET": NOBODY}),
        "courses/<int:course_id>/lms/": Rule({"GET": COURSE_TEACHERS}, kwargs="course"),
        # A grade post of another course (or none): 404 for everyone.
        "courses/<int:course_id>/lms/grades/<int:post_id>/retry/": Rule(
            {"POST": NOBODY}, kwargs="course"
        ),
    }
)

# --- People (learners/people_urls.py), notices and password pages: "people" fills the
# student's membership, an invitation of the course and a notice of the student.
_PC = "courses/<int:course_id>/people/"
MATRIX.update(
    {
        "courses/<int:course_id>/library/": Rule({"GET": COURSE_MEMBERS}, kwargs="material"),
        # Whoever holds the link sees it; POST signs up (400 when empty) or joins (redirect).
        # Before the rows that revoke the link or remove the student.
        "join/<str:token>/": Rule({"GET": EVERYONE}, kwargs="people"),
        _PC: Rule({"GET": COURSE_TEACHERS}, kwargs="people"),
        _PC + "enrol/": Rule({"GET": COURSE_TEACHERS, "POST": NOBODY}, kwargs="people"),  # 400
        # GET asks first; POST removes and redirects.
        _PC + "<int:membership_id>/remove/": Rule(
            {"GET": COURSE_TEACHERS, "POST": NOBODY}, kwargs="people"
        ),
        _PC + "invitations/": Rule({"POST": NOBODY}, kwargs="people"),
        _PC + "invitations/<int:invitation_id>/revoke/": Rule({"POST": NOBODY}, kwargs="people"),
        "staff/": Rule({"GET": ADMINS}),
        "notices/": Rule({"GET": SIGNED_IN}),
        "notices/<int:notice_id>/": Rule({"GET": NOBODY}, kwargs="people"),  # a redirect
        "notices/read/": Rule({"POST": NOBODY}),  # a redirect
        "password-reset/": Rule({"GET": EVERYONE, "POST": EVERYONE}),  # empty: form again
        "password-reset/sent/": Rule({"GET": EVERYONE}),
        "password-reset/done/": Rule({"GET": EVERYONE}),
        # A link that does not work says so on a page, for anyone.
        "password-reset/<uidb64>/<token>/": Rule({"GET": EVERYONE, "POST": EVERYONE}),
        "first-sign-in/<uidb64>/<token>/": Rule({"GET": EVERYONE, "POST": EVERYONE}),
    }
)

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
        path = path.replace("<int:student_id>", str(cast["student"].pk))
        path = path.replace("<int:post_id>", "999999")
    if rule.kwargs == "grading":
        from tests.grading.workflow_factories import grading_route_ids

        if "_grading" not in cast:
            cast["_grading"] = grading_route_ids(course=cast["_course"], student=cast["student"])
        path = path.replace("<int:course_id>", str(cast["_course"].pk))
        for name, value in cast["_grading"].items():
            path = path.replace(f"<int:{name}>", str(value))
    if rule.kwargs == "material":
        from material.models import Material

        material = Material.objects.create(
            course=cast["_course"], title="Matrix material", original_name="m.md"
        )
        path = path.replace("<int:course_id>", str(cast["_course"].pk))
        path = path.replace("<int:material_id>", str(material.pk))
    if rule.kwargs == "conversation":
        from tests.tutor.conversation_factories import conversation_route_ids

        ids = conversation_route_ids(course=cast["_course"], student=cast["student"])
        path = path.replace("<int:course_id>", str(cast["_course"].pk))
        for name, value in ids.items():
            path = path.replace(f"<int:{name}>", str(value))
    if rule.kwargs == "people":
        if "_people" not in cast:
            cast["_people"] = _people_route_ids(cast)
        path = path.replace("<int:course_id>", str(cast["_course"].pk))
        for name, value in cast["_people"].items():
            path = path.replace(f"<{name}>", str(value))
    path = path.replace("<uidb64>", "MQ").replace("<token>", "not-a-token")
    assert "<" not in path, f"the matrix does not know how to fill {route}"
    return "/" + path


def _people_route_ids(cast: dict) -> dict:
    from learners.invitations import invitation_create
    from learners.models import Membership, Notice

    course = cast["_course"]
    invitation = invitation_create(course=course, role="student", days=7, actor=cast["admin"])
    notice = Notice.objects.create(
        user=cast["student"], course=course, kind="grade_released", title="Grade", url="/"
    )
    return {
        "int:membership_id": Membership.objects.get(user=cast["student"], course=course).pk,
        "int:invitation_id": invitation.pk,
        "str:token": invitation.token,
        "int:notice_id": notice.pk,
    }


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
        for method in METHODS:
            url = _url(route, rule, cast)  # fresh rows per request where a row may be deleted
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
