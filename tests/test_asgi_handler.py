"""The ASGI application runs the middleware and a synchronous view in one thread hop
(config/asgi_handler.py), and still serves pages as the WSGI test client sees them."""

from __future__ import annotations

import asyncio
import threading

import pytest
from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.test import Client

from config.asgi import application, django_application

pytestmark = pytest.mark.django_db(transaction=True)


async def _asgi_get(path: str, cookies: dict[str, str]) -> tuple[int, dict[bytes, bytes], bytes]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"testserver"),
            (b"cookie", "; ".join(f"{k}={v}" for k, v in cookies.items()).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    sent: list[dict] = []
    requested = False

    async def receive():
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # no disconnect: Django cancels this when done

    async def send(message):
        sent.append(message)

    await application(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], {k.lower(): v for k, v in start["headers"]}, body


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
    status, headers, body = asyncio.run(_asgi_get("/profile/", cookies))

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
