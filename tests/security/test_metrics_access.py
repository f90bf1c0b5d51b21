"""/metrics is for Prometheus (bearer token) and staff, unless opened explicitly
(issue 16, item 10)."""

from __future__ import annotations

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _defaults(settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_PUBLIC = False


def test_by_default_an_anonymous_visitor_gets_401_and_no_numbers(client):
    response = client.get(reverse("metrics"))
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert "tutoring_http_requests_total" not in response.text


def test_a_signed_in_learner_or_teacher_gets_401(client, student, teacher):
    for user in (student, teacher):
        client.force_login(user)
        assert client.get(reverse("metrics")).status_code == 401


def test_a_staff_session_reads_the_metrics(client, staff_user):
    client.force_login(staff_user)
    response = client.get(reverse("metrics"))
    assert response.status_code == 200
    assert "tutoring_http_requests_total" in response.text


def test_prometheus_reads_them_with_the_bearer_token(client, settings):
    settings.METRICS_TOKEN = "scrape-token"
    assert client.get(reverse("metrics")).status_code == 401
    wrong = client.get(reverse("metrics"), HTTP_AUTHORIZATION="Bearer other")
    assert wrong.status_code == 401
    right = client.get(reverse("metrics"), HTTP_AUTHORIZATION="Bearer scrape-token")
    assert right.status_code == 200


def test_an_empty_bearer_never_matches_an_unset_token(client):
    assert client.get(reverse("metrics"), HTTP_AUTHORIZATION="Bearer ").status_code == 401


def test_metrics_public_opens_them_explicitly(client, settings):
    settings.METRICS_PUBLIC = True
    assert client.get(reverse("metrics")).status_code == 200


def test_the_setting_is_read_from_the_environment():
    import os
    import subprocess
    import sys

    code = "from django.conf import settings; print(settings.METRICS_PUBLIC)"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"}
    for value, expected in (("1", "True"), ("", "False")):
        env["METRICS_PUBLIC"] = value
        out = subprocess.run(
            [sys.executable, "-c", f"import django; django.setup(); {code}"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        assert out.stdout.strip() == expected
