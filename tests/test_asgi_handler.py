"""The ASGI application runs the middleware and a synchronous view in one thread hop
(config/asgi_handler.py), and still serves pages as the WSGI test client sees them."""

from __future__ import annotations

import asyncio
import threading

import pytest
from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.test import Client

from bench.stack import asgi_get
from config.asgi import application, django_application

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_middleware_chain_is_synchronous_under_asgi():
    assert not iscoroutinefunction(django_application._middleware_chain)


def test_a_signed_in_page_through_asgi_matches_the_wsgi_one(student, monkeypatch):
    client = Client()
    client.force_login(student)
    cookies = {settings.SESSION_COOKIE_NAME: client.cookies[settings.SESSION_COOKIE_NAME].value}
    threads: set[str] = set()
    chain = django_application._middleware_chain

    def recording_chain(request):
        threads.add(threading.current_thread().name)
        return chain(request)

    monkeypatch.setattr(django_application, "_middleware_chain", recording_chain)
    status, header_list, body = asyncio.run(
        asgi_get(application, "/profile/", cookies, host="testserver")
    )
    headers = dict(header_list)

    assert status == 200
    assert headers[b"content-security-policy"] == settings.CONTENT_SECURITY_POLICY.encode()
    assert headers[b"x-request-id"]
    page = body.decode()
    assert student.name in page and 'action="/profile/"' in page
    # The chain ran off the event loop's thread, in the request's own thread.
    assert threads and threading.current_thread().name not in threads
    wsgi = client.get("/profile/").content.decode()
    assert page.split("<main", 1)[1] == wsgi.split("<main", 1)[1].replace(_csrf(wsgi), _csrf(page))


def _csrf(page: str) -> str:
    return page.split('name="csrfmiddlewaretoken" value="', 1)[1].split('"', 1)[0]
