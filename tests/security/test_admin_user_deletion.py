"""People are never deleted through Django's stock admin delete, only erased, audited
(issue 16, item 7)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from learners.models import AuditEvent, User

pytestmark = pytest.mark.django_db


def test_the_user_list_offers_no_delete_selected_action(client, staff_user, student):
    client.force_login(staff_user)
    page = client.get(reverse("admin:learners_user_changelist"))
    actions = [value for value, _label in page.context["action_form"].fields["action"].choices]
    assert "delete_selected" not in actions
    assert "erase_personal_data" in actions


def test_posting_delete_selected_deletes_nobody(client, staff_user, student):
    client.force_login(staff_user)
    client.post(
        reverse("admin:learners_user_changelist"),
        {"action": "delete_selected", "_selected_action": [student.pk], "post": "yes"},
    )
    assert User.objects.filter(pk=student.pk).exists()


def test_the_user_delete_page_is_refused(client, staff_user, student):
    client.force_login(staff_user)
    url = reverse("admin:learners_user_delete", args=[student.pk])
    assert client.get(url).status_code == 403
    assert client.post(url, {"post": "yes"}).status_code == 403
    assert User.objects.filter(pk=student.pk).exists()
    change = client.get(reverse("admin:learners_user_change", args=[student.pk]))
    assert url not in change.text


def test_erasure_from_the_admin_is_the_way_out_and_is_audited(client, staff_user, student):
    client.force_login(staff_user)
    client.post(
        reverse("admin:learners_user_changelist"),
        {"action": "erase_personal_data", "_selected_action": [student.pk], "confirm": "erase"},
    )
    assert not User.objects.filter(pk=student.pk).exists()
    assert AuditEvent.objects.filter(
        action=AuditEvent.Action.ACCOUNT_ERASED,
        actor_id=staff_user.pk,
        target_id=str(student.pk),
    ).exists()
