"""A deeply nested JSON body is refused with 400 in the API's error format (issue 16,
item 6)."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.urls import reverse

from config.api_parsers import json_depth_exceeds

pytestmark = pytest.mark.django_db


def _post(client: Client, url: str, body: str):
    return client.post(url, data=body, content_type="application/json")


@pytest.mark.parametrize("depth", [100_000, 5_000])
def test_a_deeply_nested_body_gets_400_in_json(client, student, course, depth):
    client.raise_request_exception = False
    client.force_login(student)
    url = reverse("conversations:api-post", args=[course.pk])
    response = _post(client, url, "[" * depth + "]" * depth)
    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/json")
    assert "nests deeper than" in response.json()["detail"]


def test_an_unterminated_deep_body_gets_400_in_json(client, student, course):
    client.raise_request_exception = False
    client.force_login(student)
    url = reverse("conversations:api-post", args=[course.pk])
    response = _post(client, url, '{"a":' * 50_000)
    assert response.status_code == 400
    assert "detail" in response.json()


def test_an_ordinary_body_still_parses(client, student, course):
    client.force_login(student)
    url = reverse("conversations:api-post", args=[course.pk])
    response = _post(client, url, json.dumps({"text": "What is ATP?"}))
    assert response.status_code in (200, 201, 202)


def test_brackets_inside_strings_do_not_count():
    assert not json_depth_exceeds(json.dumps({"text": "[[[[{{{{" * 100}), 3)
    assert not json_depth_exceeds(json.dumps({"a": r"\"[[[[[[["}), 2)
    assert json_depth_exceeds(json.dumps([[[["x"]]]]), 3)
    assert not json_depth_exceeds(json.dumps([[[["x"]]]]), 4)
