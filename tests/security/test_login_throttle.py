"""Login throttling slows guessing down and never locks out the right person
(issue 16, item 2)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from learners.models import LoginThrottle
from learners.throttle import DEVICE_COOKIE, login_delay

pytestmark = pytest.mark.django_db

NAT = "198.51.100.7"  # one school's address
ELSEWHERE = "203.0.113.9"


@pytest.fixture(autouse=True)
def _small_limits(settings):
    settings.LOGIN_FREE_FAILURES = 3
    settings.LOGIN_ACCOUNT_FREE_FAILURES = 6
    settings.LOGIN_DELAY_FIRST_SECONDS = 5
    settings.LOGIN_DELAY_MAX_SECONDS = 60
    settings.TRUSTED_PROXIES = []


def _login(client: Client, username: str, password: str, address: str = NAT, **headers):
    return client.post(
        reverse("login"),
        {"username": username, "password": password},
        REMOTE_ADDR=address,
        **headers,
    )


def _time_passes(seconds: int) -> None:
    """Move every wait and failure back in time, as if ``seconds`` had passed."""
    for row in LoginThrottle.objects.all():
        row.last_failure_at -= timedelta(seconds=seconds)
        if row.blocked_until:
            row.blocked_until -= timedelta(seconds=seconds)
        row.save()


def test_failures_on_other_accounts_never_refuse_a_correct_password(client, student):
    for index in range(40):  # one pupil behind the school's address, guessing everywhere
        assert _login(Client(), f"guess{index}", "nope").status_code == 200
    assert _login(client, "student", student.raw_password).status_code == 302


def test_failures_on_one_account_slow_it_down_from_that_address_with_growing_waits(client, student):
    for _ in range(3):
        assert _login(client, "student", "nope").status_code == 200  # free
    fourth = _login(client, "student", "nope")
    assert fourth.status_code == 200 and fourth["Retry-After"] == "5"
    assert "wait 5 seconds" in fourth.text
    # While it waits even the right password is not checked.
    refused = _login(client, "student", student.raw_password)
    assert refused.status_code == 429
    assert 0 < int(refused["Retry-After"]) <= 5
    assert "Too many failed attempts on this account" in refused.text
    _time_passes(5)
    assert _login(client, "student", "nope")["Retry-After"] == "10"  # doubled
    _time_passes(10)
    assert _login(client, "student", "nope")["Retry-After"] == "20"
    _time_passes(20)
    assert _login(client, "student", student.raw_password).status_code == 302


def test_the_wait_doubles_up_to_its_longest(settings):
    assert [login_delay(n, free=3) for n in range(1, 10)] == [0, 0, 0, 5, 10, 20, 40, 60, 60]


def test_someone_elses_failures_from_another_address_do_not_hold_up_this_one(client, teacher):
    for _ in range(5):  # the address's allowance is spent, the account's is not
        _login(Client(), "teacher", "guess", address=ELSEWHERE)
    assert _login(Client(), "teacher", "guess", address=ELSEWHERE).status_code == 429
    assert _login(client, "teacher", teacher.raw_password, address=NAT).status_code == 302


def test_a_browser_that_signed_in_before_is_never_held_up_by_others(client, teacher):
    assert _login(client, "teacher", teacher.raw_password).status_code == 302
    assert client.cookies[DEVICE_COOKIE]["httponly"]
    client.post(reverse("logout"))
    # Someone guesses from many addresses, the school's among them: all new browsers wait.
    for index in range(12):
        _login(Client(), "teacher", "guess", address=f"192.0.2.{index}")
        _login(Client(), "teacher", "guess", address=NAT)
    new_browser = _login(Client(), "teacher", teacher.raw_password, address="192.0.2.200")
    assert new_browser.status_code == 429
    # The teacher's own browser, at the school, signs in.
    assert _login(client, "teacher", teacher.raw_password).status_code == 302


def test_a_known_browsers_own_failures_hold_up_only_that_browser(client, teacher, student):
    assert _login(client, "teacher", teacher.raw_password).status_code == 302
    client.post(reverse("logout"))
    for _ in range(4):
        _login(client, "teacher", "typo")
    assert _login(client, "teacher", teacher.raw_password).status_code == 429
    assert LoginThrottle.objects.get(scope="device").failures == 4
    assert not LoginThrottle.objects.filter(scope__in=["address", "account"]).exists()
    assert _login(Client(), "teacher", teacher.raw_password).status_code == 302
    # The cookie names the teacher's account only: another account from it is a new browser.
    for _ in range(4):
        _login(client, "student", "typo")
    assert _login(client, "student", student.raw_password).status_code == 429


@pytest.mark.parametrize("cookie", ["forged", "student-cookie"])
def test_a_forged_or_other_accounts_device_cookie_counts_as_a_new_browser(
    client, teacher, student, cookie
):
    if cookie == "student-cookie":
        _login(client, "student", student.raw_password)
        client.post(reverse("logout"))
    else:
        client.cookies[DEVICE_COOKIE] = '{"teacher": "mine"}'
    for _ in range(4):
        _login(client, "teacher", "guess")
    assert LoginThrottle.objects.get(username="teacher", scope="address").failures == 4
    assert _login(client, "teacher", teacher.raw_password).status_code == 429


def test_a_sign_in_starts_the_count_from_here_again(client, student):
    for _ in range(3):
        _login(client, "student", "nope")
    assert _login(client, "student", student.raw_password).status_code == 302
    client.post(reverse("logout"))
    for _ in range(3):
        assert _login(client, "student", "nope").status_code == 200
    assert "Retry-After" not in _login(Client(), "student", "nope", address=ELSEWHERE)


def test_failures_are_forgotten_after_a_while(client, student, settings):
    for _ in range(4):
        _login(client, "student", "nope")
    _time_passes(settings.LOGIN_FAILURE_MEMORY_SECONDS + 1)
    assert "Retry-After" not in _login(client, "student", "nope")
    assert LoginThrottle.objects.get(scope="address").failures == 1


def test_admins_see_who_waits_and_lift_it(client, student, staff_user):
    for _ in range(4):
        _login(Client(), "student", "nope")
    admin = Client()
    admin.force_login(staff_user)
    changelist = reverse("admin:learners_loginthrottle_changelist")
    page = admin.get(changelist, {"waiting": "yes"})
    assert page.status_code == 200
    assert NAT in page.text and "student" in page.text
    waiting = LoginThrottle.objects.filter(blocked_until__gt=timezone.now())
    assert waiting.count() == 1
    selected = [str(pk) for pk in waiting.values_list("pk", flat=True)]
    response = admin.post(changelist, {"action": "lift", "_selected_action": selected})
    assert response.status_code == 302
    row = LoginThrottle.objects.get(scope="address")
    assert (row.failures, row.blocked_until, row.lifted_by) == (0, None, staff_user.username)
    assert _login(client, "student", student.raw_password).status_code == 302


def test_a_teacher_cannot_open_the_lockouts(client, teacher):
    client.force_login(teacher)
    response = client.get(reverse("admin:learners_loginthrottle_changelist"))
    assert response.status_code == 302  # to the admin's login


def test_erasing_an_account_erases_its_failed_sign_ins(client, student):
    from privacy.personal_data import privacy_erase

    for _ in range(2):
        _login(client, "Student", "nope")
    assert LoginThrottle.objects.filter(username="student").count() == 2
    privacy_erase(user=student, actor=None)
    assert not LoginThrottle.objects.exists()


def test_the_admins_own_login_form_is_no_way_around_the_throttle(client, staff_user):
    response = client.post(
        "/admin/login/?next=/admin/",
        {"username": staff_user.username, "password": staff_user.raw_password},
    )
    assert response.status_code == 302
    assert response.url == f"{reverse('login')}?next=/admin/"
    assert "_auth_user_id" not in client.session  # no password was checked there
    # Signing in goes through the throttled form, and back to the admin.
    signed_in = _login(client, staff_user.username, staff_user.raw_password)
    assert signed_in.status_code == 302
    assert client.get("/admin/").status_code == 200
    assert client.get(reverse("admin:login")).status_code == 302  # admin:login still resolves
