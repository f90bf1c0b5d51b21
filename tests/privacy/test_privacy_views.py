"""The privacy page, its download and erasure buttons, and the admin actions behind them."""

from __future__ import annotations

import io
import zipfile

import pytest
from django.urls import reverse

from learners.models import AuditEvent, User

pytestmark = pytest.mark.django_db


def test_a_learner_downloads_their_data_as_an_attachment(client, student):
    client.force_login(student)

    response = client.post(reverse("privacy-export"))

    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"].startswith("attachment;")
    assert response["X-Content-Type-Options"] == "nosniff"
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert "account.json" in archive.namelist()
        assert student.username in archive.read("account.json").decode()
    assert AuditEvent.objects.filter(
        action=AuditEvent.Action.DATA_EXPORTED, actor_id=student.pk
    ).exists()


def test_the_privacy_page_offers_both_buttons(client, student):
    client.force_login(student)

    response = client.get(reverse("privacy"))

    assert response.status_code == 200
    assert reverse("privacy-export") in response.content.decode()
    assert reverse("privacy-erase") in response.content.decode()


@pytest.mark.parametrize("typed", ["", "someone-else", "ERASE"])
def test_erasure_without_the_typed_username_erases_nobody(client, student, typed):
    client.force_login(student)

    response = client.post(reverse("privacy-erase"), {"confirm": typed})

    assert response.status_code == 302
    assert User.objects.filter(pk=student.pk).exists()
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.ACCOUNT_ERASED).exists()


def test_a_learner_erases_their_own_account_and_is_signed_out(client, student):
    client.force_login(student)
    pk = student.pk

    response = client.post(reverse("privacy-erase"), {"confirm": student.username})

    assert response.status_code == 302
    assert not User.objects.filter(pk=pk).exists()
    event = AuditEvent.objects.get(action=AuditEvent.Action.ACCOUNT_ERASED)
    assert event.actor_id is None
    assert student.username not in event.actor_label
    assert client.get(reverse("privacy")).status_code == 302


def _changelist_action(client, action: str, users, **extra):
    return client.post(
        reverse("admin:learners_user_changelist"),
        {"action": action, "_selected_action": [u.pk for u in users], **extra},
    )


def test_staff_export_a_user_from_the_admin(client, staff_user, student):
    client.force_login(staff_user)

    response = _changelist_action(client, "export_personal_data", [student])

    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment;")
    event = AuditEvent.objects.get(action=AuditEvent.Action.DATA_EXPORTED)
    assert (event.actor_id, event.target_id) == (staff_user.pk, str(student.pk))


def test_staff_erase_a_user_from_the_admin_only_after_confirming(client, staff_user, student):
    client.force_login(staff_user)

    asked = _changelist_action(client, "erase_personal_data", [student])
    assert asked.status_code == 200
    assert User.objects.filter(pk=student.pk).exists()

    done = _changelist_action(client, "erase_personal_data", [student], confirm="erase")
    assert done.status_code == 302
    assert not User.objects.filter(pk=student.pk).exists()
    assert AuditEvent.objects.get(action=AuditEvent.Action.ACCOUNT_ERASED).actor_id == (
        staff_user.pk
    )


def test_the_admin_refuses_to_erase_staff(client, staff_user, make_user):
    colleague = make_user(is_staff=True)
    client.force_login(staff_user)

    _changelist_action(client, "erase_personal_data", [colleague], confirm="erase")

    assert User.objects.filter(pk=colleague.pk).exists()
