"""Enrolling a class from a CSV file: every problem named, nothing written until clean."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from learners.enrolment import (
    ENROLMENT_CSV_MAX_ROWS,
    EnrolmentNotClean,
    enrolment_import,
    enrolment_preview,
)
from learners.models import AuditEvent, Membership, User

pytestmark = pytest.mark.django_db

CLEAN = (
    "username,email,name,role\n"
    "asha.k,asha@school.example,Asha Kumar,student\n"
    ",ben@school.example,Ben Ortiz,Student\n"
    "carla,carla@school.example,Carla Diaz,student\n"
)


def _problems(preview) -> list[str]:
    return preview.problems + [
        f"line {row.line}: {' '.join(row.problems)}" for row in preview.problem_rows
    ]


def test_a_clean_file_previews_what_it_will_do_and_writes_nothing(course, teacher):
    preview = enrolment_preview(course=course, data=CLEAN.encode(), actor=teacher)
    assert preview.is_clean, _problems(preview)
    assert [row.action for row in preview.rows] == ["create", "create", "create"]
    assert preview.new_accounts == 3 and preview.enrolments == 3
    assert not User.objects.filter(username="asha.k").exists()


def test_importing_creates_accounts_memberships_audit_and_first_sign_in_emails(
    course, teacher, eager_tasks, settings, django_capture_on_commit_callbacks
):
    settings.SITE_URL = "https://school.example"
    with django_capture_on_commit_callbacks(execute=True):
        result = enrolment_import(course=course, data=CLEAN.encode(), actor=teacher)
    assert len(result.created) == 3 and result.enrolled == 3
    ben = User.objects.get(email="ben@school.example")
    assert ben.username == "ben@school.example" and ben.display_name == "Ben Ortiz"
    assert not ben.has_usable_password()
    assert Membership.objects.filter(course=course, role="student").count() == 3
    events = AuditEvent.objects.filter(action="role_changed", course_id=course.pk)
    assert events.count() == 3 and all(e.after == {"role": "student"} for e in events)
    assert sorted(m.to[0] for m in mail.outbox) == [
        "asha@school.example",
        "ben@school.example",
        "carla@school.example",
    ]
    body = next(m.body for m in mail.outbox if m.to == ["ben@school.example"])
    assert "Your username is ben@school.example" in body
    assert re.search(r"https://school\.example/first-sign-in/[^/]+/[^/\s]+/", body)


def test_the_first_sign_in_link_lets_the_person_choose_a_password(
    client, course, teacher, eager_tasks, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        enrolment_import(course=course, data=CLEAN.encode(), actor=teacher)
    body = next(m.body for m in mail.outbox if m.to == ["asha@school.example"])
    path = re.search(r"(/first-sign-in/\S+/)", body).group(1)
    form_page = client.get(path, follow=True)
    assert "Choose your password" in form_page.text and "asha.k" in form_page.text
    done = client.post(
        form_page.redirect_chain[-1][0],
        {"new_password1": "a long new pass 42", "new_password2": "a long new pass 42"},
        follow=True,
    )
    assert "Password saved" in done.text
    assert client.login(username="asha.k", password="a long new pass 42")
    # The link is spent once used.
    assert "no longer works" in client.get(path, follow=True).text


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"user,mail,role\nx,x@e.example,student\n", "Unknown column “user”"),
        (b"username,name\nx,X\n", "no “role” column"),
        (b"name,role\nX,student\n", "needs a “username” or an “email” column"),
        (b"", "The file is empty"),
        (b"username,role\n", "lists nobody"),
        ("username,name,role\njosé,José,student\n".encode("latin-1"), "not UTF-8 text: line 2"),
    ],
)
def test_a_file_with_the_wrong_shape_is_named_and_nothing_is_imported(
    course, teacher, data, expected
):
    preview = enrolment_preview(course=course, data=data, actor=teacher)
    assert not preview.is_clean
    assert any(expected in problem for problem in preview.problems), preview.problems
    with pytest.raises(EnrolmentNotClean):
        enrolment_import(course=course, data=data, actor=teacher)
    assert Membership.objects.filter(course=course).count() == 1  # the teacher


def test_every_problem_row_is_named_with_its_line_and_nothing_is_written(
    course, teacher, make_user
):
    make_user("taken@school.example", email="someone.else@school.example")
    data = (
        b"username,email,name,role\n"
        b"ok.one,ok1@school.example,Ok One,student\n"
        b"dup,dup@school.example,Dup,student\n"
        b"dup,other@school.example,Dup Again,student\n"
        b"nora,nora@school.example,Nora,pupil\n"
        b"zed,,Zed,student\n"
        b"bad name!,bad@school.example,Bad,student\n"
        b"mail,not-an-email,Mail,student\n"
        b"boss,boss@school.example,Boss,teacher\n"
        b",taken@school.example,Taken,student\n"
        b"short,only-two-values\n"
    )
    preview = enrolment_preview(course=course, data=data, actor=teacher)
    problems = {row.line: " ".join(row.problems) for row in preview.problem_rows}
    assert set(problems) == {4, 5, 6, 7, 8, 9, 10, 11}, problems
    assert "same person as line 3" in problems[4]
    assert "Unknown role “pupil”" in problems[5]
    assert "needs an email address" in problems[6]
    assert "not a valid username" in problems[7]
    assert "not a valid email address" in problems[8]
    assert "Only an administrator can enrol teachers" in problems[9]
    assert "is taken by another account" in problems[10]
    assert "2 values; the header names 4" in problems[11]
    with pytest.raises(EnrolmentNotClean) as refused:
        enrolment_import(course=course, data=data, actor=teacher)
    assert len(refused.value.preview.problem_rows) == 8
    assert not User.objects.filter(username="ok.one").exists()


def test_a_hundred_thousand_rows_are_refused_by_size_without_reading_them(course, teacher):
    rows = "".join(f"user{i},user{i}@school.example,User {i},student\n" for i in range(100_000))
    data = ("username,email,name,role\n" + rows).encode()
    preview = enrolment_preview(course=course, data=data, actor=teacher)
    assert preview.rows == [] and "larger than 1 MB" in preview.problems[0]


def test_more_rows_than_the_limit_are_refused_even_in_a_small_file(course, teacher):
    rows = "".join(f"u{i},student\n" for i in range(ENROLMENT_CSV_MAX_ROWS + 1))
    data = f"username,role\n{rows}".encode()
    preview = enrolment_preview(course=course, data=data, actor=teacher)
    assert not preview.is_clean
    assert f"more than {ENROLMENT_CSV_MAX_ROWS} people" in preview.problems[0]


def test_existing_people_are_found_by_email_and_roles_change_with_an_audit_entry(
    course, staff_user, student, make_user
):
    known = make_user("known", email="Known@School.example")
    data = (
        "email;name;role\n"
        "known@school.example;Known;student\n"
        f"{student.username}@nowhere.example;;student\n"
    ).encode()
    # A semicolon file (a European spreadsheet) reads the same; the second row is new.
    preview = enrolment_preview(course=course, data=data, actor=staff_user)
    assert preview.is_clean, _problems(preview)
    assert [row.action for row in preview.rows] == ["enrol", "create"]
    change = f"username,role\n{student.username},teacher\n".encode()
    result = enrolment_import(course=course, data=change, actor=staff_user)
    assert result.role_changes == 1
    assert Membership.objects.get(user=student, course=course).role == "teacher"
    event = AuditEvent.objects.filter(target_id=str(student.pk)).latest("created_at")
    assert (event.before, event.after) == ({"role": "student"}, {"role": "teacher"})
    assert known.memberships.count() == 0  # only previewed


def test_a_teacher_cannot_demote_a_teacher_or_change_their_own_role(
    course, teacher, make_user, enrol
):
    colleague = make_user("colleague")
    enrol(colleague, course, "teacher")
    data = f"username,role\ncolleague,student\n{teacher.username},student\n".encode()
    preview = enrolment_preview(course=course, data=data, actor=teacher)
    problems = [" ".join(row.problems) for row in preview.problem_rows]
    assert "Only an administrator can change a teacher's role." in problems[0]
    assert "You cannot change your own role." in problems[1]


def test_the_page_previews_an_upload_then_imports_the_text(client, course, teacher):
    client.force_login(teacher)
    url = reverse("people:enrol", args=[course.pk])
    assert client.get(url).status_code == 200
    bad = SimpleUploadedFile("class.csv", b"username,role\nx,wizard\n", content_type="text/csv")
    response = client.post(url, {"file": bad, "action": "preview"})
    assert response.status_code == 400
    assert "Line 2 (x): Unknown role “wizard”" in response.text
    assert "Nothing has been imported." in response.text
    assert "x,wizard" in response.text  # the text comes back to be fixed in place
    response = client.post(url, {"csv": CLEAN, "action": "preview"})
    assert response.status_code == 200 and "Import 3 rows" in response.text
    response = client.post(url, {"csv": CLEAN, "action": "import"}, follow=True)
    assert "Enrolled 3" in response.text
    assert Membership.objects.filter(course=course, role="student").count() == 3


def test_the_page_says_what_to_do_with_nothing_and_students_cannot_open_it(
    client, course, teacher, student
):
    client.force_login(teacher)
    url = reverse("people:enrol", args=[course.pk])
    response = client.post(url, {"action": "preview"})
    assert response.status_code == 400 and "Choose a CSV file or paste the rows." in response.text
    client.force_login(student)
    assert client.get(url).status_code == 404
    assert client.post(url, {"csv": CLEAN, "action": "import"}).status_code == 404
    assert Membership.objects.filter(course=course).count() == 2
