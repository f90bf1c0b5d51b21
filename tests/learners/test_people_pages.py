"""Invitation links, the roster, the staff home and password reset by email."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.core.exceptions import PermissionDenied
from django.urls import reverse
from django.utils import timezone

from learners.invitations import invitation_accept, invitation_create, invitation_revoke
from learners.models import AuditEvent, Invitation, Membership, User
from learners.roster import ROSTER_PAGE_SIZE

pytestmark = pytest.mark.django_db


# --- Invitation links ------------------------------------------------------------------


def test_teachers_invite_students_and_only_administrators_invite_teachers(
    course, teacher, staff_user
):
    link = invitation_create(course=course, role="student", days=7, actor=teacher)
    assert link.expires_at > timezone.now() + timedelta(days=6)
    with pytest.raises(PermissionDenied):
        invitation_create(course=course, role="teacher", days=7, actor=teacher)
    assert invitation_create(course=course, role="teacher", days=1, actor=staff_user).role == (
        "teacher"
    )


def test_a_visitor_makes_an_account_from_the_link_and_is_in_the_course(client, course, teacher):
    link = invitation_create(course=course, role="student", days=7, actor=teacher)
    url = reverse("people:join", args=[link.token])
    page = client.get(url)
    assert page.status_code == 200 and f"Join {course.title}" in page.text
    assert "log in to join" in page.text
    response = client.post(
        url,
        {
            "username": "newbie",
            "display_name": "New Bie",
            "email": "newbie@school.example",
            "password1": "a long new pass 42",
            "password2": "a long new pass 42",
        },
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("course-detail", args=[course.pk])
    newbie = User.objects.get(username="newbie")
    assert Membership.objects.get(user=newbie, course=course).role == "student"
    assert client.get(reverse("home")).status_code == 200  # signed in
    link.refresh_from_db()
    assert link.uses == 1
    assert AuditEvent.objects.filter(target_id=str(newbie.pk), action="role_changed").exists()


def test_a_bad_signup_form_is_shown_again_with_its_errors(client, course, teacher):
    link = invitation_create(course=course, role="student", days=7, actor=teacher)
    response = client.post(reverse("people:join", args=[link.token]), {"username": "x"})
    assert response.status_code == 400
    assert "This field is required." in response.text
    assert not User.objects.filter(username="x").exists()


def test_a_signed_in_person_joins_with_one_button_and_a_member_keeps_their_role(
    client, course, teacher, other_student
):
    link = invitation_create(course=course, role="student", days=7, actor=teacher)
    url = reverse("people:join", args=[link.token])
    client.force_login(other_student)
    assert "Join the course" in client.get(url).text
    client.post(url)
    assert Membership.objects.get(user=other_student, course=course).role == "student"
    client.force_login(teacher)
    assert "You are already in this course (Teacher)" in client.get(url).text
    assert invitation_accept(invitation=link, user=teacher).role == "teacher"


@pytest.mark.parametrize(
    ("change", "status", "text"),
    [
        ("expire", 410, "This invitation has expired"),
        ("revoke", 410, "This invitation was withdrawn"),
        ("unknown", 404, "This invitation link does not exist"),
    ],
)
def test_an_expired_revoked_or_unknown_link_gets_a_clear_page(
    client, course, teacher, student, change, status, text
):
    link = invitation_create(course=course, role="student", days=1, actor=teacher)
    token = link.token
    if change == "expire":
        Invitation.objects.filter(pk=link.pk).update(expires_at=timezone.now())
    elif change == "revoke":
        invitation_revoke(invitation=link)
    else:
        token = "no-such-token"
    for who in (None, student):
        if who:
            client.force_login(who)
        response = client.get(reverse("people:join", args=[token]))
        assert response.status_code == status and text in response.text
        assert "Ask your teacher for a new" in response.text or change == "unknown"
        assert client.post(reverse("people:join", args=[token])).status_code == status


def test_the_roster_lists_links_and_revoking_one_removes_it(client, course, teacher):
    client.force_login(teacher)
    roster = reverse("people:roster", args=[course.pk])
    client.post(
        reverse("people:invitation-new", args=[course.pk]), {"role": "student", "days": "7"}
    )
    link = Invitation.objects.get(course=course)
    assert reverse("people:join", args=[link.token]) in client.get(roster).text
    client.post(reverse("people:invitation-revoke", args=[course.pk, link.pk]))
    assert link.token not in client.get(roster).text
    response = client.post(
        reverse("people:invitation-new", args=[course.pk]),
        {"role": "teacher", "days": "7"},
        follow=True,
    )
    assert "Only an administrator can invite teachers." in response.text
    assert Invitation.objects.filter(course=course).count() == 1


# --- The roster ------------------------------------------------------------------------


@pytest.fixture
def big_class(course, make_user):
    users = User.objects.bulk_create(
        [
            User(username=f"learner{i:03}", display_name=f"Learner {i:03}", email=f"l{i}@e.example")
            for i in range(120)
        ]
    )
    Membership.objects.bulk_create(
        [Membership(user=user, course=course, role="student") for user in users]
    )
    return users


def test_the_roster_is_paginated_with_a_pinned_query_count(
    client, course, teacher, big_class, django_assert_max_num_queries
):
    client.force_login(teacher)
    url = reverse("people:roster", args=[course.pk])
    # session, user, preferences, course, role, count, page of members, invitations.
    with django_assert_max_num_queries(9):
        response = client.get(url, {"page": 2})
    assert "121 people enrolled" in response.text
    assert "Page 2 of 3" in response.text
    assert response.text.count('class="roster-row"') == ROSTER_PAGE_SIZE
    found = client.get(url, {"q": "learner007"})
    assert "Learner 007" in found.text and "Learner 008" not in found.text
    teachers = client.get(url, {"role": "teacher"})
    assert "1 person enrolled" in teachers.text and "Ms. Tanaka" in teachers.text


def test_the_roster_shows_last_sign_in_and_who_has_not_chosen_a_password(
    client, course, teacher, student, make_user, enrol
):
    fresh = User.objects.create_user("fresh", email="fresh@e.example")  # no password yet
    enrol(fresh, course, "student")
    User.objects.filter(pk=student.pk).update(last_login=timezone.now() - timedelta(days=2))
    client.force_login(teacher)
    text = client.get(reverse("people:roster", args=[course.pk])).text
    assert "Last signed in 2\xa0days ago" in text
    assert "Has not chosen a password yet" in text


def test_removing_asks_first_then_removes_and_keeps_an_audit_entry(
    client, course, teacher, student
):
    membership = Membership.objects.get(user=student, course=course)
    url = reverse("people:remove", args=[course.pk, membership.pk])
    client.force_login(teacher)
    page = client.get(url)
    assert "Remove Sam Student?" in page.text and "are kept" in page.text
    assert Membership.objects.filter(pk=membership.pk).exists()
    response = client.post(url, follow=True)
    assert "Sam Student is no longer in" in response.text
    assert not Membership.objects.filter(pk=membership.pk).exists()
    event = AuditEvent.objects.get(target_id=str(student.pk), action="role_changed")
    assert (event.before, event.after) == ({"role": "student"}, {"role": None})
    client.force_login(student)
    assert client.get(reverse("course-detail", args=[course.pk])).status_code == 404


def test_a_teacher_cannot_remove_themselves_or_another_teacher(
    client, course, teacher, make_user, enrol
):
    colleague = enrol(make_user("colleague"), course, "teacher")
    own = Membership.objects.get(user=teacher, course=course)
    client.force_login(teacher)
    for membership in (own, colleague):
        client.post(reverse("people:remove", args=[course.pk, membership.pk]))
        assert Membership.objects.filter(pk=membership.pk).exists()


def test_students_and_strangers_cannot_open_the_roster(client, course, student, other_teacher):
    for who in (student, other_teacher):
        client.force_login(who)
        assert client.get(reverse("people:roster", args=[course.pk])).status_code == 404


# --- The staff home --------------------------------------------------------------------


def test_the_staff_home_links_every_staff_page_and_each_course(
    client, staff_user, course, make_course, django_assert_max_num_queries
):
    for index in range(60):
        make_course(f"Year 7 class {index:02}")
    client.force_login(staff_user)
    with django_assert_max_num_queries(6):
        response = client.get(reverse("people:staff-home"))
    for name in ("admin:index", "admin:learners_auditevent_changelist", "healthz", "metrics"):
        assert reverse(name) in response.text
    assert reverse("course-usage", args=[course.pk]) in response.text
    assert reverse("people:enrol", args=[course.pk]) in response.text
    assert "Page 1 of 2" in response.text


def test_the_staff_home_is_for_staff_only(client, teacher):
    client.force_login(teacher)
    assert client.get(reverse("people:staff-home")).status_code == 404


# --- Password reset by email -------------------------------------------------------------


def test_a_reset_for_an_unknown_email_answers_exactly_like_a_known_one(
    client, make_user, eager_tasks, django_capture_on_commit_callbacks
):
    make_user("known", email="known@school.example")
    url = reverse("password_reset")
    with django_capture_on_commit_callbacks(execute=True):
        known = client.post(url, {"email": "known@school.example"}, follow=True)
    assert len(mail.outbox) == 1
    with django_capture_on_commit_callbacks(execute=True):
        unknown = client.post(url, {"email": "nobody@school.example"}, follow=True)
    assert len(mail.outbox) == 1
    assert known.redirect_chain == unknown.redirect_chain

    def page(response) -> str:  # the same page but for the per-request CSRF token
        return re.sub(r'"X-CSRFToken": "[^"]+"', "", response.text)

    assert page(known) == page(unknown) and "Check your email" in known.text


def test_the_reset_link_sets_a_new_password_even_for_an_account_that_never_had_one(
    client, eager_tasks, django_capture_on_commit_callbacks
):
    User.objects.create_user("enrolled", email="enrolled@school.example")  # unusable password
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("password_reset"), {"email": "ENROLLED@school.example"})
    message = mail.outbox[0]
    assert message.to == ["enrolled@school.example"]
    path = next(
        word.split("testserver", 1)[1] for word in message.body.split() if "testserver" in word
    )
    form = client.get(path, follow=True)
    assert "Choose a new password" in form.text
    short = client.post(
        form.redirect_chain[-1][0], {"new_password1": "abc", "new_password2": "abc"}
    )
    assert "This password is too short" in short.text
    done = client.post(
        form.redirect_chain[-1][0],
        {"new_password1": "a long new pass 42", "new_password2": "a long new pass 42"},
        follow=True,
    )
    assert "Password saved" in done.text
    assert client.login(username="enrolled", password="a long new pass 42")


def test_the_login_page_links_to_the_reset(client):
    assert reverse("password_reset") in client.get(reverse("login")).text
