"""Schemathesis fuzzes every operation of the OpenAPI schema, once per role.

The schema is the one drf-spectacular generates from our views; requests go in-process
to the real WSGI application (real middleware, session authentication and CSRF checks)
against the real database. Path ids point at rows of one course (the student's essay,
conversation, memory...) unless the fuzzer is testing a malformed path. Every case must
get no 5xx, a documented status code and content type, and a body matching the schema;
schemathesis' other default checks run too (schema-valid input accepted, invalid input
refused, authentication enforced, unsupported methods answered 405).

Each case runs in a savepoint that is rolled back, so every case meets the same rows.
The number of cases is printed at the end of the module; set ``API_FUZZ_EXAMPLES`` for a
longer run than CI's.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from datetime import timedelta

import pytest
import schemathesis
from django.core.management import call_command
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, transaction
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from rest_framework.utils.encoders import JSONEncoder
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import positive_data_acceptance

ROLES = ("anonymous", "student", "other_student", "teacher", "other_teacher", "admin")
# Generated examples per operation and role, on top of schemathesis' coverage phase.
EXAMPLES = int(os.environ.get("API_FUZZ_EXAMPLES", "10"))
CSRF_TOKEN = "fuzz" * 8  # a 32-character CSRF secret, sent as the cookie and the header
# The CSRF pair session authentication demands for writes, sent as a browser sends it;
# outside the generated case, because the schema (rightly) declares neither.
CSRF = {"cookies": {"csrftoken": CSRF_TOKEN}, "headers": {"X-CSRFToken": CSRF_TOKEN}}


def _openapi() -> dict:
    generated = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(json.dumps(generated, cls=JSONEncoder))


schema = schemathesis.openapi.from_dict(_openapi())
schema.app = get_wsgi_application()  # requests (and the checks' probes) go in-process
schema.config.generation.update(
    max_examples=EXAMPLES,
    deterministic=True,  # the same cases on every run; API_FUZZ_EXAMPLES explores further
    # Text never holds NUL (DRF refuses it, PostgreSQL cannot store it); the API's
    # description says so instead of every string's pattern.
    allow_x00=False,
)
# Operations whose schema-valid input may still be refused with 400, and why: the check
# that schema-valid input is accepted is skipped for them (every other check runs).
BOUNDS_OUTSIDE_THE_SCHEMA = {
    "POST /api/courses/{course_id}/assignments/{assignment_id}/submissions/{submission_id}"
    "/criteria/{criterion_id}/": "a score's range and step come from the criterion's rubric",
}
_counts: Counter[str] = Counter()
_statuses: Counter[int] = Counter()


def _session_key(role: str) -> str:
    """Known before the database exists: schemathesis builds its coverage cases (and
    their credentials) when it collects the tests."""
    return f"fuzz-session-{role.replace('_', '-')}"


def _session_auth(role: str) -> type:
    class SessionAuth:
        """The role's session cookie, the schema's ``cookieAuth``."""

        def get(self, case, context):
            return _session_key(role)

        def set(self, case, data, context):
            case.cookies = {**(case.cookies or {}), "sessionid": data}

    return SessionAuth


@pytest.fixture(scope="module", autouse=True)
def _report_case_count(request):
    yield
    plugins = request.config.pluginmanager
    reporter = plugins.get_plugin("terminalreporter")
    capture = plugins.get_plugin("capturemanager")
    if reporter is None or capture is None or not _counts["tests"]:
        return
    statuses = ", ".join(f"{code}: {n}" for code, n in sorted(_statuses.items()))
    with capture.global_and_fixture_disabled():
        reporter.write_line(
            f"\nschemathesis: {_counts['cases']} cases in {_counts['tests']} tests "
            f"({len(schema)} operations x {len(ROLES)} roles); statuses {statuses}"
        )


@pytest.fixture
def _keep_connection():
    """Like Django's test client, requests leave the test's database connection (and its
    transaction) open."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def world(student, other_student, teacher, other_teacher, staff_user, course, settings, tmp_path):
    """One course with a row behind every kind of id in the API, and a signed-in session
    for every role but the anonymous one."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore
    from django.contrib.sessions.models import Session

    from learners.consent import consent_record
    from learners.models import Concept
    from learning.models import PracticeQuestion
    from material.models import Material
    from tests.grading.workflow_factories import grading_route_ids
    from tests.tutor.conversation_factories import conversation_route_ids

    settings.MEDIA_ROOT = tmp_path  # the files the fuzzer uploads
    consent_record(user=student, granted=True, given_by="learner")
    ids = {"course_id": course.pk}
    ids.update(grading_route_ids(course=course, student=student))
    ids.update(conversation_route_ids(course=course, student=student))
    ids["material_id"] = Material.objects.create(
        course=course, title="Fuzz material", original_name="m.md"
    ).pk
    question = PracticeQuestion.objects.create(
        concept=Concept.objects.create(course=course, name="Photosynthesis"),
        kind=PracticeQuestion.Kind.CLOZE,
        prompt="Plants make _____.",
        answers=["glucose"],
        status=PracticeQuestion.Status.APPROVED,
        origin=PracticeQuestion.Origin.TEACHER,
    )
    users = {
        "student": student,
        "other_student": other_student,
        "teacher": teacher,
        "other_teacher": other_teacher,
        "admin": staff_user,
    }
    for role, user in users.items():
        signed_in = {
            SESSION_KEY: str(user.pk),
            BACKEND_SESSION_KEY: "django.contrib.auth.backends.ModelBackend",
            HASH_SESSION_KEY: user.get_session_auth_hash(),
        }
        Session.objects.create(
            session_key=_session_key(role),
            session_data=SessionStore().encode(signed_in),
            expire_date=timezone.now() + timedelta(hours=1),
        )
    body_ids = {"question": question.pk, "conversation": ids["conversation_id"]}
    return {"ids": ids, "body_ids": body_ids}


def _aim_at_real_rows(case, world) -> None:
    """Well-formed ids become ids of real rows, so the fuzzer reaches the code behind the
    lookups; malformed ones are left to test the refusals."""
    if case.path_parameters and not case.meta.is_negative_at(ParameterLocation.PATH):
        for name in case.path_parameters:
            if name in world["ids"]:
                case.path_parameters[name] = world["ids"][name]
    body = case.body
    if isinstance(body, dict) and not case.meta.is_negative_at(ParameterLocation.BODY):
        for name, value in world["body_ids"].items():
            if isinstance(body.get(name), int) and not isinstance(body.get(name), bool):
                body[name] = value


def _fuzz(case, world) -> None:
    _aim_at_real_rows(case, world)
    _counts["cases"] += 1
    with transaction.atomic():
        try:
            response = case.call(**CSRF)
            _statuses[response.status_code] += 1
            excluded = []
            if case.operation.label in BOUNDS_OUTSIDE_THE_SCHEMA:
                excluded.append(positive_data_acceptance)
            case.validate_response(response, transport_kwargs=CSRF, excluded_checks=excluded)
        finally:
            transaction.set_rollback(True)  # every case meets the same rows


def _fuzz_test_as(role: str):
    """The fuzz test of every operation, with the credentials of ``role``."""

    @settings(
        deadline=None,
        database=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.filter_too_much,
        ],
    )
    def test(case, world, _keep_connection):
        _fuzz(case, world)

    if role != "anonymous":
        test = schema.auth.apply(_session_auth(role), refresh_interval=None)(test)
    test = pytest.mark.django_db(schema.parametrize()(test))
    return test


@pytest.fixture(autouse=True)
def _count_tests(request):
    if request.node.name.startswith("test_api_as_"):
        _counts["tests"] += 1


test_api_as_anonymous = _fuzz_test_as("anonymous")
test_api_as_student = _fuzz_test_as("student")
test_api_as_other_student = _fuzz_test_as("other_student")
test_api_as_teacher = _fuzz_test_as("teacher")
test_api_as_other_teacher = _fuzz_test_as("other_teacher")
test_api_as_admin = _fuzz_test_as("admin")


def test_the_schema_is_valid_and_has_no_gaps(tmp_path):
    """drf-spectacular warns about every view or field it cannot type; none may be left."""
    call_command(
        "spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yml")
    )


def test_the_exceptions_name_real_operations():
    labels = {result.ok().label for result in schema.get_all_operations()}
    assert set(BOUNDS_OUTSIDE_THE_SCHEMA) <= labels


def test_the_fuzzer_ran_every_operation_for_every_role():
    """Runs after the fuzz tests of this module (pytest keeps the file's order)."""
    if not _counts["tests"]:
        pytest.skip("the fuzz tests were deselected")
    assert _counts["cases"] >= _counts["tests"]
    if _counts["tests"] == len(schema) * len(ROLES):
        assert _statuses[200] and _statuses[201] and _statuses[403] and _statuses[404]
