"""The one error map (config/errors.py): a service's Django error answers the same way
from every API view."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from config.errors import API_STATUS_BY_CODE


def _answer(error: Exception):
    class Refusing(APIView):
        authentication_classes: list = []
        permission_classes: list = []

        def get(self, request):
            raise error

    request = APIRequestFactory().get("/api/anything/")
    return Refusing.as_view()(request)


@pytest.mark.parametrize("code, status", sorted(API_STATUS_BY_CODE.items()))
def test_a_validation_error_answers_with_the_status_of_its_code(code, status):
    response = _answer(ValidationError("Not now.", code=code))
    assert (response.status_code, response.data) == (status, {"detail": "Not now."})


def test_a_validation_error_without_a_mapped_code_is_a_400_with_one_sentence():
    response = _answer(ValidationError(["Too long.", "Try again."], code="too_long"))
    assert (response.status_code, response.data) == (400, {"detail": "Too long. Try again."})


def test_retry_after_travels_with_the_error():
    error = ValidationError("Tomorrow.", code="ai_budget", params={"retry_after": 90})
    response = _answer(error)
    assert (response.status_code, response["Retry-After"]) == (429, "90")


@pytest.mark.parametrize("error, status", [(PermissionDenied("no"), 403), (Http404("no"), 404)])
def test_django_refusals_keep_their_status(error, status):
    assert _answer(error).status_code == status
