"""Sessions read with one plain query (config/sessions.py) behave as Django's database
sessions: read back, expired ones ignored, logged-out ones gone at once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from config.sessions import SessionStore

pytestmark = pytest.mark.django_db


def test_the_engine_is_ours():
    assert settings.SESSION_ENGINE == "config.sessions"


def test_a_saved_session_reads_back_in_one_query(django_assert_num_queries):
    store = SessionStore()
    store["answer"] = 42
    store.save()
    with django_assert_num_queries(1):
        again = SessionStore(store.session_key)
        assert again["answer"] == 42
    assert again.session_key == store.session_key


def test_an_expired_or_unknown_session_is_empty_and_gets_a_new_key():
    store = SessionStore()
    store["answer"] = 42
    store.save()
    Session.objects.filter(pk=store.session_key).update(
        expire_date=timezone.now() - timedelta(seconds=1)
    )
    expired = SessionStore(store.session_key)
    assert expired.get("answer") is None
    assert expired.session_key is None
    assert SessionStore("x" * 32).get("answer") is None


def test_a_logged_out_session_no_longer_signs_in(client, student):
    client.force_login(student)
    key = client.cookies[settings.SESSION_COOKIE_NAME].value
    assert client.get(reverse("home")).status_code == 200
    client.post(reverse("logout"))
    assert not Session.objects.filter(pk=key).exists()
    stale = Client()
    stale.cookies[settings.SESSION_COOKIE_NAME] = key
    response = stale.get(reverse("home"))
    assert response.status_code == 302 and reverse("login") in response.url
