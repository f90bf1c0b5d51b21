from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, transaction
from django.urls import reverse

from learners.models import AuditEvent, Membership
from learners.services import membership_set_role

pytestmark = pytest.mark.django_db


def test_role_changes_are_audited(student, course, staff_user):
    membership_set_role(actor=staff_user, user=student, course=course, role="teacher")
    event = AuditEvent.objects.get(action=AuditEvent.Action.ROLE_CHANGED)
    assert (event.before, event.after) == ({"role": "student"}, {"role": "teacher"})
    assert event.actor_id == staff_user.pk and event.course_id == course.pk
    assert Membership.objects.get(user=student, course=course).role == "teacher"


def test_an_unchanged_role_writes_no_audit_event(student, course, staff_user):
    membership_set_role(actor=staff_user, user=student, course=course, role="student")
    assert not AuditEvent.objects.exists()


def test_the_database_refuses_to_update_or_delete_audit_events(student, course, staff_user):
    membership_set_role(actor=staff_user, user=student, course=course, role=None)
    event = AuditEvent.objects.get()
    for statement in (
        "UPDATE learners_auditevent SET reason = 'rewritten' WHERE id = %s",
        "DELETE FROM learners_auditevent WHERE id = %s",
    ):
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(statement, [event.pk])
    event.refresh_from_db()
    assert event.reason == ""


def test_changing_a_role_in_the_admin_is_audited(client, staff_user, student, course):
    membership = Membership.objects.get(user=student, course=course)
    client.force_login(staff_user)
    response = client.post(
        reverse("admin:learners_membership_change", args=[membership.pk]),
        {"user": student.pk, "course": course.pk, "role": "teacher"},
    )
    assert response.status_code == 302
    event = AuditEvent.objects.get()
    assert event.after == {"role": "teacher"} and event.actor_id == staff_user.pk


def test_a_course_that_requires_consent_blocks_ai_until_the_learner_agrees(client, student, course):
    from learners.consent import ai_access

    course.requires_ai_consent = True
    course.save()
    assert not ai_access(user=student, course=course).allowed
    client.force_login(student)
    response = client.post(reverse("consent"), {"decision": "grant"})
    assert response.status_code == 302
    assert ai_access(user=student, course=course).allowed
    client.post(reverse("consent"), {"decision": "withdraw"})
    assert not ai_access(user=student, course=course).allowed


def test_an_under_13_learner_needs_a_guardian_or_school_consent(student, course, staff_user):
    import datetime as dt

    from learners.consent import ai_access, consent_record

    student.birth_date = dt.date.today().replace(year=dt.date.today().year - 11)
    student.save()
    consent_record(user=student, granted=True, given_by="learner")
    access = ai_access(user=student, course=course)
    assert not access.allowed and "parent, guardian or your school" in access.reason
    consent_record(user=student, granted=True, given_by="school", recorded_by=staff_user)
    assert ai_access(user=student, course=course).allowed


def test_consent_from_an_older_wording_does_not_count(student, course, settings):
    from learners.consent import ai_access, consent_record

    course.requires_ai_consent = True
    course.save()
    consent_record(user=student, granted=True, given_by="learner")
    settings.AI_CONSENT_VERSION = "2099-01"
    assert not ai_access(user=student, course=course).allowed
