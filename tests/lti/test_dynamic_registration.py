"""LTI Dynamic Registration against a loopback LMS: the one-time link, what the tool
sends, what it stores, and every way it can fail (a clear page, nothing stored)."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from urllib.parse import urlencode, urlsplit

import pytest
from django.core.management import call_command
from django.utils import timezone

from lti.models import LtiDeployment, LtiPlatform, LtiRegistrationLink
from tests.lti.launching import follow_landing, launch, learner_launch
from tests.lti.platform import LtiTestPlatform
from tests.lti.registration_platform import REGISTRATION_TOKEN, RegistrationPlatform

pytestmark = pytest.mark.django_db

SITE = "http://testserver"
AGS_NRPS = {
    "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem",
    "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly",
    "https://purl.imsglobal.org/spec/lti-ags/scope/score",
    "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly",
}


@pytest.fixture
def lms():
    platform = RegistrationPlatform()
    yield platform
    platform.stop()


def registration_link(hours: int = 72) -> str:
    out = io.StringIO()
    call_command("lti_registration_link", "--hours", str(hours), "--json", stdout=out)
    return urlsplit(json.loads(out.getvalue())["registration_url"]).path


def open_link(client, path: str, lms: RegistrationPlatform, **params):
    query = {
        "openid_configuration": lms.configuration_url,
        "registration_token": REGISTRATION_TOKEN,
    }
    query.update(params)
    return client.get(path + "?" + urlencode({k: v for k, v in query.items() if v is not None}))


def assert_nothing_stored():
    assert not LtiPlatform.objects.exists()
    assert not LtiDeployment.objects.exists()


def test_the_link_command_prints_a_one_time_url(settings, db):
    out = io.StringIO()
    call_command("lti_registration_link", stdout=out)
    text = out.getvalue()
    assert settings.SITE_URL.rstrip("/") + "/lti/register/" in text
    link = LtiRegistrationLink.objects.get()
    assert link.used_at is None and link.expires_at > timezone.now() + timedelta(hours=71)
    token = text.split("/lti/register/")[1].split("/")[0]
    assert token not in link.token_hash  # only the hash is kept


def test_a_registration_posts_the_tool_and_stores_platform_and_deployment(client, lms, settings):
    settings.SITE_URL = "https://tutor.school.example"
    site = "https://tutor.school.example"
    path = registration_link()
    response = open_link(client, path, lms)
    assert response.status_code == 200, response.content[:800]
    page = response.content.decode()
    assert "data-lti-registered" in page and "dyn-deployment-1" in page
    assert "js/lti-registration-close.js" in page and "<script>" not in page

    # What the LMS received.
    assert len(lms.received) == 1
    sent = lms.received[0]
    assert sent["path"] == "/register"
    assert sent["headers"]["Authorization"] == f"Bearer {REGISTRATION_TOKEN}"
    body = sent["body"]
    assert body["application_type"] == "web"
    assert body["response_types"] == ["id_token"]
    assert set(body["grant_types"]) == {"implicit", "client_credentials"}
    assert body["initiate_login_uri"] == site + "/lti/login/"
    assert body["redirect_uris"] == [site + "/lti/launch/"]
    assert body["jwks_uri"] == site + "/lti/jwks/"
    assert body["token_endpoint_auth_method"] == "private_key_jwt"
    assert set(body["scope"].split()) == AGS_NRPS
    tool = body["https://purl.imsglobal.org/spec/lti-tool-configuration"]
    assert tool["domain"] == "tutor.school.example"
    assert tool["target_link_uri"] == site + "/lti/launch/"
    assert {"iss", "sub", "name", "email"} <= set(tool["claims"])
    types = {m["type"] for m in tool["messages"]}
    assert types == {"LtiResourceLinkRequest", "LtiDeepLinkingRequest"}

    # What the tool stored.
    platform = LtiPlatform.objects.get()
    assert platform.issuer == lms.issuer
    assert platform.client_id == "dyn-client-1"
    assert platform.auth_login_url == lms.auth_login_url
    assert platform.auth_token_url == lms.token_url
    assert platform.keyset_url == lms.keyset_url
    assert platform.is_active and "loopback-lms" in platform.name
    assert list(platform.deployments.values_list("deployment_id", flat=True)) == [
        "dyn-deployment-1"
    ]
    link = LtiRegistrationLink.objects.get()
    assert link.used_at is not None and link.platform == platform

    # The LMS frames the page; the response lets it.
    assert lms.base in response["Content-Security-Policy"].split("frame-ancestors")[1]

    # The link is spent: a second use is refused and the LMS is not called again.
    again = open_link(client, path, lms)
    assert again.status_code == 404
    assert 'data-lti-registration-error="link_invalid"' in again.content.decode()
    assert len(lms.received) == 1 and LtiPlatform.objects.count() == 1


def test_a_dynamically_registered_platform_launches_for_real(client, db):
    """The registration's answer names a real LTI 1.3 platform (lti1p3platform): a
    learner's launch from it works without any manual step."""
    real = LtiTestPlatform(
        tool_login_url=SITE + "/lti/login/", tool_launch_url=SITE + "/lti/launch/"
    )
    lms = RegistrationPlatform(
        issuer=real.issuer,
        auth_login_url=real.auth_login_url,
        token_url=real.token_url,
        keyset_url=real.keyset_url,
        client_id=real.client_id,
        deployment_id=real.deployment_id,
    )
    try:
        response = open_link(client, registration_link(), lms)
        assert response.status_code == 200, response.content[:800]
        real.trust_tool_keys(client.get("/lti/jwks/").json())
        target = follow_landing(client, launch(client, real, learner_launch()))
        assert target.endswith("/tutor/")
    finally:
        lms.stop()
        real.stop()


def test_an_issuer_on_another_host_is_refused_before_registering(client, lms):
    lms.issuer = "https://lms.elsewhere.example"
    path = registration_link()
    response = open_link(client, path, lms)
    assert response.status_code == 400
    page = response.content.decode()
    assert 'data-lti-registration-error="issuer_mismatch"' in page
    assert "lms.elsewhere.example" in page
    assert lms.received == []
    assert_nothing_stored()
    # The failed try did not spend the link.
    lms.issuer = lms.base
    assert open_link(client, path, lms).status_code == 200
    assert LtiPlatform.objects.count() == 1


def test_an_unreachable_configuration_is_a_clear_page(client, lms):
    path = registration_link()
    lms.stop()
    response = open_link(client, path, lms)
    assert response.status_code == 502
    assert 'data-lti-registration-error="configuration_unreachable"' in response.content.decode()
    assert_nothing_stored()
    assert LtiRegistrationLink.objects.get().used_at is None


def test_a_configuration_error_status_is_a_clear_page(client, lms):
    lms.configuration_status = 500
    response = open_link(client, registration_link(), lms)
    assert response.status_code == 502
    assert "HTTP 500" in response.content.decode()
    assert_nothing_stored()


def test_a_configuration_without_a_registration_endpoint_is_refused(client, lms):
    lms.leave_out = {"registration_endpoint"}
    response = open_link(client, registration_link(), lms)
    assert response.status_code == 400
    page = response.content.decode()
    assert 'data-lti-registration-error="configuration_incomplete"' in page
    assert "registration_endpoint" in page
    assert lms.received == []
    assert_nothing_stored()


def test_the_platform_refusing_the_registration_stores_nothing(client, lms):
    lms.refuse = (400, {"error": "invalid_client_metadata", "error_description": "bad scope"})
    path = registration_link()
    response = open_link(client, path, lms)
    assert response.status_code == 502
    page = response.content.decode()
    assert 'data-lti-registration-error="registration_refused"' in page
    assert "invalid_client_metadata" in page
    assert len(lms.received) == 1
    assert_nothing_stored()
    assert LtiRegistrationLink.objects.get().used_at is None


def test_an_answer_without_client_id_stores_nothing(client, lms):
    lms.refuse = (201, {"application_type": "web"})
    response = open_link(client, registration_link(), lms)
    assert response.status_code == 502
    assert 'data-lti-registration-error="registration_invalid"' in response.content.decode()
    assert_nothing_stored()


def test_an_answer_without_deployment_keeps_the_platform_and_says_what_to_add(client, lms):
    lms.deployment_id = None
    response = open_link(client, registration_link(), lms)
    assert response.status_code == 200
    assert "data-lti-no-deployment" in response.content.decode()
    assert LtiPlatform.objects.get().client_id == "dyn-client-1"
    assert not LtiDeployment.objects.exists()


def test_an_unknown_or_expired_link_never_calls_the_lms(client, lms):
    response = open_link(client, "/lti/register/not-a-token/", lms)
    assert response.status_code == 404
    path = registration_link()
    LtiRegistrationLink.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
    response = open_link(client, path, lms)
    assert response.status_code == 404
    assert 'data-lti-registration-error="link_invalid"' in response.content.decode()
    assert lms.configuration_requests == 0 and lms.received == []
    assert_nothing_stored()


def test_a_link_opened_without_openid_configuration_says_so(client, lms):
    path = registration_link()
    response = client.get(path)
    assert response.status_code == 400
    assert 'data-lti-registration-error="no_configuration"' in response.content.decode()
    assert LtiRegistrationLink.objects.get().used_at is None


def test_a_plain_http_configuration_off_loopback_is_refused(client, lms):
    response = open_link(
        client, registration_link(), lms, openid_configuration="http://lms.example/.well-known/x"
    )
    assert response.status_code == 400
    assert 'data-lti-registration-error="insecure_url"' in response.content.decode()
    assert lms.configuration_requests == 0
    assert_nothing_stored()


def test_the_link_cannot_be_used_twice_at_once(client, lms):
    """A link claimed by a registration in flight refuses a second one."""
    path = registration_link()
    LtiRegistrationLink.objects.update(used_at=timezone.now())
    response = open_link(client, path, lms)
    assert response.status_code == 404
    assert lms.received == []


def test_staff_see_the_links_in_the_admin_without_their_tokens(client, staff_user):
    path = registration_link()
    client.force_login(staff_user)
    page = client.get("/admin/lti/ltiregistrationlink/")
    assert page.status_code == 200
    assert path.split("/")[3] not in page.content.decode()
    link = LtiRegistrationLink.objects.get()
    assert client.get(f"/admin/lti/ltiregistrationlink/{link.pk}/change/").status_code == 200


def registration_link_for(issuer: str) -> str:
    out = io.StringIO()
    call_command("lti_registration_link", "--issuer", issuer, "--json", stdout=out)
    return urlsplit(json.loads(out.getvalue())["registration_url"]).path


def test_a_link_for_an_exact_issuer_accepts_it_on_another_host(client, lms):
    """Canvas Cloud: the issuer is https://canvas.instructure.com whatever the host of
    the configuration URL; the admin names it when making the link."""
    lms.issuer = "https://canvas.instructure.com"
    response = open_link(client, registration_link_for("https://canvas.instructure.com"), lms)
    assert response.status_code == 200, response.content[:800]
    assert LtiPlatform.objects.get().issuer == "https://canvas.instructure.com"


def test_a_link_for_an_exact_issuer_refuses_any_other(client, lms):
    response = open_link(client, registration_link_for("https://canvas.instructure.com"), lms)
    assert response.status_code == 400
    page = response.content.decode()
    assert 'data-lti-registration-error="issuer_mismatch"' in page
    assert "canvas.instructure.com" in page
    assert lms.received == []
    assert_nothing_stored()


def test_an_overlong_client_id_is_refused_not_a_500(client, lms):
    lms.client_id = "c" * 300
    path = registration_link()
    response = open_link(client, path, lms)
    assert response.status_code == 400
    assert 'data-lti-registration-error="value_too_long"' in response.content.decode()
    assert_nothing_stored()
    assert LtiRegistrationLink.objects.get().used_at is None


def test_odd_shapes_in_the_platform_configuration_do_not_break_it(client, lms):
    configuration = lms.configuration

    def odd():
        config = configuration()
        config["https://purl.imsglobal.org/spec/lti-platform-configuration"] = "not an object"
        config["scopes_supported"] = "not a list"
        config["authorization_server"] = "https://lms.example/token"
        return config

    lms.configuration = odd
    response = open_link(client, registration_link(), lms)
    assert response.status_code == 200, response.content[:800]
    body = lms.received[0]["body"]
    assert set(body["scope"].split()) == AGS_NRPS
    platform = LtiPlatform.objects.get()
    assert platform.auth_audience == "https://lms.example/token"
    assert platform.name == "127.0.0.1"
