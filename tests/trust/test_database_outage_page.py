"""With the database out of reach (down, restarting, or no pooled connection free in time),
pages answer 503 "busy, try again" with Retry-After in our layout, and the API a JSON 503;
a bug is still a 500 (tests/grading/test_essay_failures.py). The database is really made
unreachable: the connection is pointed at a socket directory where no PostgreSQL listens."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client

from config.errors import DATABASE_BUSY_RETRY_AFTER


@pytest.fixture
def database_unreachable(tmp_path):
    saved = dict(connection.settings_dict)
    connection.close()
    connection.settings_dict.update({"HOST": str(tmp_path), "PORT": "5999"})
    yield
    connection.close()
    connection.settings_dict.clear()
    connection.settings_dict.update(saved)


@pytest.mark.django_db(transaction=True)
def test_a_page_says_busy_and_when_to_retry_when_the_database_is_unreachable(
    student, database_unreachable
):
    client = Client(raise_request_exception=False)
    client.cookies["sessionid"] = "any-session"  # a signed-in visitor: the session is read
    page = client.get("/")
    assert page.status_code == 503
    assert page["Retry-After"] == str(DATABASE_BUSY_RETRY_AFTER)
    html = page.content.decode()
    assert "The site is busy" in html and 'class="site-header"' in html
    assert "Traceback" not in html

    answer = client.get("/api/courses/1/materials")
    assert answer.status_code == 503
    assert answer.json() == {"detail": "The service is busy. Try again in a moment."}
