"""Walking an LTI launch between the test platform and the tool, as a browser would."""

from __future__ import annotations

from urllib.parse import urlsplit

from tests.lti.platform import INSTRUCTOR, LEARNER, PendingLaunch, query_of


def learner_launch(sub="learner-1", context_id="course-101", **fields) -> PendingLaunch:
    fields.setdefault("name", "Lee Learner")
    return PendingLaunch(
        sub=sub, roles=[LEARNER], context_id=context_id, context_title="Biology 101", **fields
    )


def instructor_launch(sub="teacher-1", context_id="course-101", **fields) -> PendingLaunch:
    fields.setdefault("name", "Ina Instructor")
    return PendingLaunch(
        sub=sub, roles=[INSTRUCTOR], context_id=context_id, context_title="Biology 101", **fields
    )


def start_login(client, platform, pending):
    """Platform → tool login initiation → redirect back to the platform: its query."""
    url = platform.login_initiation_url(pending)
    parts = urlsplit(url)
    response = client.get(parts.path + "?" + parts.query)
    assert response.status_code == 302, response.content[:500]
    assert response["Location"].startswith(platform.auth_login_url)
    return query_of(response["Location"])


def launch_form(client, platform, pending, *, registration=None, tamper=None):
    """The form the platform's authorisation endpoint makes, signed with ``registration``
    (another client id or deployment) when given."""
    query = start_login(client, platform, pending)
    if tamper:
        tamper(query)
    return platform.authorize(query, registration=registration)


def post_launch(client, form):
    return client.post(
        urlsplit(form["launch_url"]).path, {"id_token": form["id_token"], "state": form["state"]}
    )


def launch(client, platform, pending, **kwargs):
    """The whole launch; returns the launch response."""
    return post_launch(client, launch_form(client, platform, pending, **kwargs))


def follow_landing(client, response):
    assert response.status_code == 302, response.content[:800]
    landing = client.get(response["Location"])
    assert landing.status_code == 302, landing.content[:800]
    return landing["Location"]
