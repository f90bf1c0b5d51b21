"""Deep Linking round trip: the teacher picks an item, the platform (lti1p3platform)
verifies our signed response with our JWKS, and its link launches onto that item."""

from __future__ import annotations

import re
from html import unescape

import pytest
import requests

from lti.models import LtiContext
from tests.lti.launching import follow_landing, instructor_launch, launch, learner_launch

pytestmark = pytest.mark.django_db


def _deep_link_launch(client, lti_platform, pending):
    pending.message_type = "LtiDeepLinkingRequest"
    return launch(client, lti_platform, pending)


def test_a_teacher_places_an_assignment_and_the_platform_gets_a_resource_link(
    client, lti_platform, assignment
):
    # The first launch links the course; the assignment is moved into it.
    follow_landing(client, launch(client, lti_platform, instructor_launch()))
    course = LtiContext.objects.get().course
    assignment.course = course
    assignment.save()
    client.logout()

    picker_url = follow_landing(
        client, _deep_link_launch(client, lti_platform, instructor_launch())
    )
    assert picker_url == "/lti/deep-link/"
    picker = client.get(picker_url)
    html = picker.content.decode()
    assert "Course tutor: Biology 101" in html and assignment.title in html
    answer = client.post(picker_url, {"target": f"assignment:{assignment.pk}"})
    assert answer.status_code == 200
    page = answer.content.decode()
    action = unescape(re.search(r'action="([^"]+)" data-lti-autosubmit', page).group(1))
    jwt = re.search(r'name="JWT" value="([^"]+)"', page).group(1)
    assert action == lti_platform.base + "/deep_link_return"
    assert f"form-action 'self' {lti_platform.base}" in answer["Content-Security-Policy"]

    # The browser posts it to the LMS, which checks it with the tool's published keys.
    assert requests.post(action, data={"JWT": jwt}, timeout=10).status_code == 200
    [item] = lti_platform.deep_link_items
    assert item["type"] == "ltiResourceLink"
    assert item["url"].endswith("/lti/launch/")
    assert item["custom"] == {"target": f"assignment:{assignment.pk}"}
    assert item["lineItem"]["scoreMaximum"] == 6.0
    assert item["lineItem"]["resourceId"] == f"assignment-{assignment.pk}"

    # The placement cannot be replayed, and the placed link opens the assignment.
    assert client.post(picker_url, {"target": "tutor"}).status_code == 400
    client.logout()
    target = follow_landing(
        client, launch(client, lti_platform, learner_launch(custom=item["custom"]))
    )
    assert target == f"/courses/{course.pk}/assignments/{assignment.pk}/"


def test_a_learner_cannot_place_items(client, lti_platform):
    response = _deep_link_launch(client, lti_platform, learner_launch())
    assert response.status_code == 403
    assert "Only a teacher of the course" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_the_picker_without_a_placement_in_progress_says_so(client, lti_platform, student):
    client.force_login(student)
    response = client.get("/lti/deep-link/")
    assert response.status_code == 400
    assert "no placement in progress" in response.content.decode()
