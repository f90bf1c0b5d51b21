"""Names and Role Provisioning Services: the roster the platform serves (lti1p3platform's
NRPS handler, behind its access tokens) decides who is in the course."""

from __future__ import annotations

import pytest
from django.conf import settings

from learners.models import Membership, User
from lti.models import LtiContext
from lti.tasks import roster_sync, roster_sync_all
from tests.lti.launching import follow_landing, instructor_launch, launch
from tests.lti.platform import INSTRUCTOR, LEARNER

pytestmark = pytest.mark.django_db


def _member(sub, role, **fields):
    return {"user_id": sub, "roles": [role], "status": "Active", **fields}


def _roles(course):
    return dict(
        Membership.objects.filter(course=course).values_list("user__lti_identities__sub", "role")
    )


def test_a_teacher_launch_syncs_the_roster_and_beat_drops_who_left(
    client, lti_platform, eager_tasks, django_capture_on_commit_callbacks, make_user, enrol
):
    lti_platform.members["course-101"] = [
        _member("teacher-1", INSTRUCTOR, name="Ina Instructor"),
        _member("learner-1", LEARNER, name="Lee Learner", email="lee@school.example"),
        _member("learner-2", LEARNER, given_name="Kim", family_name="Park"),
    ]
    with django_capture_on_commit_callbacks(execute=True):
        follow_landing(client, launch(client, lti_platform, instructor_launch()))
    context = LtiContext.objects.get()
    course = context.course
    assert _roles(course) == {
        "teacher-1": "teacher",
        "learner-1": "student",
        "learner-2": "student",
    }
    kim = User.objects.get(lti_identities__sub="learner-2")
    assert (kim.first_name, kim.last_name) == ("Kim", "Park") and not kim.has_usable_password()
    assert context.roster_synced_at is not None or LtiContext.objects.get().roster_synced_at
    local = make_user("hand-enrolled")
    enrol(local, course, "student")

    # learner-2 leaves the LMS course; learner-1 is marked inactive; learner-3 joins.
    lti_platform.members["course-101"] = [
        _member("teacher-1", INSTRUCTOR),
        {**_member("learner-1", LEARNER), "status": "Inactive"},
        _member("learner-3", LEARNER, name="New Learner"),
    ]
    assert roster_sync_all.delay().get() == 1
    roles = _roles(course)
    assert roles == {"teacher-1": "teacher", "learner-3": "student", None: "student"}
    # Removed from the course, not erased: the account (and its work) stays.
    assert User.objects.filter(lti_identities__sub="learner-2").exists()
    assert Membership.objects.filter(user=local, course=course).exists()


def test_a_platform_outage_leaves_the_roster_as_it_was_and_says_why(client, lti_platform):
    lti_platform.members["course-101"] = [_member("teacher-1", INSTRUCTOR)]
    follow_landing(client, launch(client, lti_platform, instructor_launch()))
    context = LtiContext.objects.get()
    before = _roles(context.course)
    lti_platform.down = True
    assert roster_sync(context.pk) is None
    assert _roles(context.course) == before
    assert "503" in LtiContext.objects.get().roster_error


def test_beat_runs_the_roster_sync_daily():
    entry = settings.CELERY_BEAT_SCHEDULE["lti-roster-sync-all"]
    assert entry["task"] == "lti.tasks.roster_sync_all"
    assert entry["schedule"] == 24 * 60 * 60
