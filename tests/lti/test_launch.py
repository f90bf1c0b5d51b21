"""Registration and launch against a real LTI 1.3 platform (lti1p3platform on loopback),
and every way a launch can be wrong: each a clear page in our layout, no session."""

from __future__ import annotations

import base64
import io
import json
import logging

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from learners.models import Course, Membership, User
from lti.models import LtiContext, LtiDeployment, LtiIdentity, LtiPlatform, ToolKey
from tests.lti.launching import (
    follow_landing,
    instructor_launch,
    launch,
    launch_form,
    learner_launch,
    post_launch,
)
from tests.lti.platform import ADMINISTRATOR, TEACHING_ASSISTANT, PendingLaunch

pytestmark = pytest.mark.django_db


# -- registration ------------------------------------------------------------------


def test_platform_add_prints_exactly_the_three_tool_urls_as_json(lti_platform, settings):
    site = settings.SITE_URL.rstrip("/")
    assert lti_platform.tool_urls == {
        "login_url": site + "/lti/login/",
        "launch_url": site + "/lti/launch/",
        "jwks_url": site + "/lti/jwks/",
    }
    platform = LtiPlatform.objects.get(issuer=lti_platform.issuer)
    assert platform.client_id == "tutor-tool"
    assert list(platform.deployments.values_list("deployment_id", flat=True)) == ["deployment-1"]


def test_platform_add_in_words_and_again_updates_rather_than_duplicates(lti_platform):
    out = io.StringIO()
    call_command(
        "lti_platform_add",
        "--issuer",
        lti_platform.issuer,
        "--client-id",
        "tutor-tool",
        "--deployment-id",
        "deployment-1",
        "--deployment-id",
        "deployment-2",
        "--auth-login-url",
        lti_platform.auth_login_url,
        "--auth-token-url",
        lti_platform.token_url,
        "--keyset-url",
        lti_platform.keyset_url,
        stdout=out,
    )
    text = out.getvalue()
    assert text.startswith("Updated")
    assert "OIDC login initiation URL: http" in text and "/lti/login/\n" in text
    assert "Launch (redirect / target link) URL: http" in text and "/lti/launch/\n" in text
    assert "Public keyset (JWKS) URL: http" in text and "/lti/jwks/\n" in text
    assert LtiPlatform.objects.count() == 1
    assert LtiDeployment.objects.count() == 2


def test_platform_add_refuses_a_url_that_is_not_one(db):
    with pytest.raises(CommandError, match="--keyset-url is not a URL"):
        call_command(
            "lti_platform_add",
            "--issuer",
            "https://lms.example",
            "--client-id",
            "c",
            "--deployment-id",
            "d",
            "--auth-login-url",
            "https://lms.example/auth",
            "--auth-token-url",
            "https://lms.example/token",
            "--keyset-url",
            "not a url",
        )


def test_the_signing_key_is_made_once_published_and_rotated_with_overlap(client, db):
    first = client.get("/lti/jwks/").json()["keys"]
    assert len(first) == 1 and first[0]["alg"] == "RS256" and first[0]["use"] == "sig"
    assert "d" not in first[0]  # public part only
    assert client.get("/lti/jwks/").json()["keys"] == first
    assert ToolKey.objects.count() == 1
    call_command("lti_rotate_key", stdout=io.StringIO())
    rotated = client.get("/lti/jwks/").json()["keys"]
    assert {k["kid"] for k in rotated} == {first[0]["kid"], ToolKey.objects.first().kid}
    assert ToolKey.objects.filter(retired_at__isnull=True).count() == 1


# -- launches that work ------------------------------------------------------------


def test_a_learner_launch_signs_in_a_new_student_of_a_new_course(client, lti_platform):
    response = launch(client, lti_platform, learner_launch(email="lee@school.example"))
    target = follow_landing(client, response)
    identity = LtiIdentity.objects.get(sub="learner-1")
    user = identity.user
    assert not user.has_usable_password()
    assert user.display_name == "Lee Learner" and user.email == "lee@school.example"
    assert not user.is_staff
    context = LtiContext.objects.get(context_id="course-101")
    assert context.course.title == "Biology 101"
    assert context.memberships_url == lti_platform.memberships_url("course-101")
    assert context.lineitems_url == lti_platform.lineitems_url("course-101")
    assert Membership.objects.get(user=user).role == "student"
    assert target == f"/courses/{context.course.pk}/tutor/"
    page = client.get(target)
    assert page.status_code == 200
    assert int(client.session["_auth_user_id"]) == user.pk


def test_a_second_launch_finds_the_same_person_and_course(client, lti_platform):
    launch(client, lti_platform, learner_launch())
    client.logout()
    launch(client, lti_platform, learner_launch(name="Lee L. Learner"))
    assert User.objects.filter(lti_identities__isnull=False).count() == 1
    assert Course.objects.count() == 1
    assert LtiIdentity.objects.get().user.display_name == "Lee L. Learner"


@pytest.mark.parametrize(
    "roles",
    [
        ["http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor"],
        [TEACHING_ASSISTANT],
        ["http://purl.imsglobal.org/vocab/lis/v2/membership#ContentDeveloper"],
    ],
)
def test_teaching_roles_become_teachers(client, lti_platform, roles):
    pending = instructor_launch()
    pending.roles = roles
    follow_landing(client, launch(client, lti_platform, pending))
    assert Membership.objects.get(user__lti_identities__sub="teacher-1").role == "teacher"


def test_an_lms_administrator_gets_no_site_rights(client, lti_platform):
    pending = learner_launch(sub="admin-1")
    pending.roles = [ADMINISTRATOR, "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"]
    follow_landing(client, launch(client, lti_platform, pending))
    user = User.objects.get(lti_identities__sub="admin-1")
    assert not user.is_staff and not user.is_superuser
    assert Membership.objects.get(user=user).role == "student"


def test_a_link_to_an_assignment_lands_on_it(client, lti_platform, assignment):
    # The assignment's course is linked to the LMS course first (the teacher's launch).
    launch(client, lti_platform, instructor_launch())
    client.logout()
    context = LtiContext.objects.get()
    assignment.course = context.course
    assignment.save()
    pending = learner_launch(custom={"target": f"assignment:{assignment.pk}"})
    target = follow_landing(client, launch(client, lti_platform, pending))
    assert target == f"/courses/{context.course.pk}/assignments/{assignment.pk}/"
    assert client.get(target).status_code == 200


def test_a_link_to_practice_lands_on_practice(client, lti_platform):
    target = follow_landing(
        client, launch(client, lti_platform, learner_launch(custom={"target": "practice"}))
    )
    assert target.endswith("/practice/")


def test_a_link_to_an_assignment_of_another_course_is_refused(client, lti_platform, assignment):
    response = launch(
        client, lti_platform, learner_launch(custom={"target": f"assignment:{assignment.pk}"})
    )
    assert response.status_code == 404
    assert "not part of Biology 101" in response.content.decode()


def test_the_launch_pages_may_be_framed_by_the_platform_only(client, lti_platform):
    response = launch(client, lti_platform, learner_launch())
    target = follow_landing(client, response)
    page = client.get(target)
    csp = page["Content-Security-Policy"]
    assert f"frame-ancestors 'self' {lti_platform.base}" in csp
    assert "X-Frame-Options" not in page
    # A session that did not come from an LMS keeps the strict policy.
    client.logout()
    plain = client.get("/login/")
    assert "frame-ancestors 'none'" in plain["Content-Security-Policy"]
    assert plain["X-Frame-Options"] == "DENY"


def test_over_https_the_lti_session_cookie_is_samesite_none(client, lti_platform, settings):
    settings.SESSION_COOKIE_SECURE = True
    form = launch_form(client, lti_platform, learner_launch())
    response = client.post(
        "/lti/launch/", {"id_token": form["id_token"], "state": form["state"]}, secure=True
    )
    cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    assert cookie["samesite"] == "None" and cookie["secure"]


def test_blocked_cookies_get_an_open_in_a_new_tab_page_that_signs_in_once(client, lti_platform):
    from django.test import Client

    response = launch(client, lti_platform, learner_launch())
    framed = Client()  # the iframe, whose browser dropped the session cookie
    page = framed.get(response["Location"])
    assert page.status_code == 200
    html = page.content.decode()
    assert "Open in a new tab" in html and 'target="_blank"' in html
    ticket = page.context["ticket"]
    tab = Client()  # the new, first-party tab
    resumed = tab.post("/lti/resume/", {"ticket": ticket})
    assert resumed.status_code == 302 and resumed["Location"].endswith("/tutor/")
    assert tab.get(resumed["Location"]).status_code == 200
    again = Client().post("/lti/resume/", {"ticket": ticket})
    assert again.status_code == 400 and "expired or was already used" in again.content.decode()


# -- launches that are refused -------------------------------------------------------


def _refused(response, code: str, status: int = 400) -> str:
    html = response.content.decode()
    assert response.status_code == status, html[:1000]
    assert f'data-lti-error="{code}"' in html
    assert "The LMS launch did not work" in html and 'class="site-header"' in html
    assert "_auth_user_id" not in response.client.session
    assert not User.objects.filter(lti_identities__isnull=False).exists()
    return html


def _tamper_payload(token: str) -> str:
    header, payload, signature = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body["sub"] = "someone-else"
    forged = base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")
    return f"{header}.{forged}.{signature}"


def test_a_tampered_signature_is_refused(client, lti_platform, caplog):
    form = launch_form(client, lti_platform, learner_launch())
    form["id_token"] = _tamper_payload(form["id_token"])
    with caplog.at_level(logging.WARNING, logger="lti.launch"):
        html = _refused(post_launch(client, form), "bad_signature", 403)
    assert "altered or signed by someone else" in html
    logged = caplog.text
    assert "bad_signature" in logged and lti_platform.issuer in logged and "someone-else" in logged
    assert form["id_token"] not in logged and form["id_token"].split(".")[2] not in logged


def test_a_token_for_another_client_id_is_refused(client, lti_platform):
    other = lti_platform._registration("someone-elses-tool", lti_platform.deployment_id)

    def aim_elsewhere(query):
        query["client_id"] = "someone-elses-tool"

    form = launch_form(
        client, lti_platform, learner_launch(), registration=other, tamper=aim_elsewhere
    )
    html = _refused(post_launch(client, form), "wrong_audience", 403)
    assert "someone-elses-tool" in html and "tutor-tool" in html


def test_an_expired_token_is_refused(client, lti_platform):
    lti_platform.id_token_expiration = -600
    html = _refused(launch(client, lti_platform, learner_launch()), "expired")
    assert "check the clocks" in html


def test_a_replayed_launch_is_refused(client, lti_platform):
    form = launch_form(client, lti_platform, learner_launch())
    assert post_launch(client, form).status_code == 302
    client.logout()
    User.objects.all().delete()
    _refused(post_launch(client, form), "unknown_state")


def test_a_replayed_nonce_with_a_fresh_state_is_refused(client, lti_platform):
    first = launch_form(client, lti_platform, learner_launch())
    assert post_launch(client, first).status_code == 302
    client.logout()
    User.objects.all().delete()
    fresh = launch_form(client, lti_platform, learner_launch())
    html = _refused(post_launch(client, {**first, "state": fresh["state"]}), "replayed_nonce")
    assert "already used" in html


def test_an_unknown_deployment_is_refused_by_name(client, lti_platform):
    other = lti_platform._registration(lti_platform.client_id, "deployment-we-never-saw")
    html = _refused(
        launch(client, lti_platform, learner_launch(), registration=other),
        "unknown_deployment",
        403,
    )
    assert (
        f"This deployment (deployment-we-never-saw) is not registered for issuer "
        f"{lti_platform.issuer}" in html
    )


def test_a_key_missing_from_the_platform_keyset_is_refused_after_one_refresh(client, lti_platform):
    assert launch(client, lti_platform, learner_launch()).status_code == 302
    client.logout()
    User.objects.all().delete()
    fetched = lti_platform.keyset_requests
    lti_platform.rotate_key(publish=False)
    html = _refused(launch(client, lti_platform, learner_launch()), "unknown_kid", 403)
    assert lti_platform.keyset_url in html
    assert lti_platform.keyset_requests == fetched + 1  # the cached keyset was refreshed once


def test_a_platform_key_rotation_is_picked_up_by_refreshing_the_cached_keyset(client, lti_platform):
    assert launch(client, lti_platform, learner_launch()).status_code == 302
    client.logout()
    fetched = lti_platform.keyset_requests
    assert launch(client, lti_platform, learner_launch()).status_code == 302
    assert lti_platform.keyset_requests == fetched  # cached
    client.logout()
    lti_platform.rotate_key(publish=True)
    assert launch(client, lti_platform, learner_launch()).status_code == 302
    assert lti_platform.keyset_requests == fetched + 1


def test_an_unknown_issuer_at_login_is_refused_in_words(client, db):
    response = client.get(
        "/lti/login/",
        {
            "iss": "https://unknown.lms.example",
            "login_hint": "x",
            "target_link_uri": "http://testserver/lti/launch/",
        },
    )
    assert response.status_code == 403
    assert (
        "No LMS is registered with issuer https://unknown.lms.example" in response.content.decode()
    )


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"state": "state-x"},
        {"state": "state-x", "id_token": "not.a.jwt"},
        {"id_token": "a.b.c"},
    ],
)
def test_malformed_launch_posts_get_a_page_not_a_500(client, db, data):
    response = client.post("/lti/launch/", data)
    assert response.status_code == 400
    assert "The LMS launch did not work" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_a_launch_without_a_course_is_refused(client, lti_platform):
    pending = PendingLaunch(sub="x", roles=[], context_id="", context_title="")
    form = launch_form(client, lti_platform, pending)
    _refused(post_launch(client, form), "missing_context")
