from __future__ import annotations

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_home_sends_anonymous_visitors_to_log_in(client):
    response = client.get(reverse("home"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_student_home_lists_the_courses_they_study(client, student, course, other_course):
    client.force_login(student)
    response = client.get(reverse("home"))
    assert response.status_code == 200
    assert "My courses" in response.text
    assert course.title in response.text
    assert other_course.title not in response.text
    assert "Courses I teach" not in response.text


def test_teacher_home_lists_the_courses_they_teach(client, teacher, course):
    client.force_login(teacher)
    response = client.get(reverse("home"))
    assert "Courses I teach" in response.text
    assert course.title in response.text


def test_staff_home_links_to_administration(client, staff_user):
    client.force_login(staff_user)
    response = client.get(reverse("home"))
    assert reverse("admin:index") in response.text
    assert reverse("people:staff-home") in response.text


def test_home_page_query_count_is_pinned(
    client, student, make_course, enrol, django_assert_num_queries
):
    for index in range(5):
        enrol(student, make_course(f"Extra {index}"), "student")
    client.force_login(student)
    # session, user, memberships with their courses, learning preferences, due reviews,
    # and the to-do (open assignments, released grades, unread notices): no query per course.
    with django_assert_num_queries(8):
        client.get(reverse("home"))


def test_a_course_page_is_not_found_for_a_stranger(client, other_student, course):
    client.force_login(other_student)
    response = client.get(reverse("course-detail", args=[course.pk]))
    assert response.status_code == 404


def test_a_course_page_opens_for_its_student(client, student, course):
    client.force_login(student)
    response = client.get(reverse("course-detail", args=[course.pk]))
    assert response.status_code == 200
    assert course.title in response.text


def test_wrong_credentials_get_a_clear_message(client, student):
    response = client.post(reverse("login"), {"username": "student", "password": "wrong"})
    assert response.status_code == 200
    assert "do not match an account" in response.text


def test_demo_content_loads_twice_without_duplicates(db):
    from django.core.management import call_command

    from learners.models import Course, Membership, User

    call_command("load_demo")
    call_command("load_demo")
    assert Course.objects.filter(slug="demo-biology").count() == 1
    assert User.objects.filter(username__startswith="demo-").count() == 4
    assert Membership.objects.count() == 3
    assert User.objects.get(username="demo-teacher").check_password("demo-teacher-pass")

    from material.models import Chunk, Material

    assert Material.objects.filter(status=Material.Status.READY).count() == 3
    chunks = Chunk.objects.count()
    call_command("load_demo")
    assert Material.objects.count() == 3 and Chunk.objects.count() == chunks > 0


def test_admin_lists_courses_and_memberships(client, staff_user, teacher, course):
    client.force_login(staff_user)
    for name in ("learners_course", "learners_membership", "learners_user"):
        response = client.get(reverse(f"admin:{name}_changelist"))
        assert response.status_code == 200, name
    assert course.title in client.get(reverse("admin:learners_course_changelist")).text
