"""The one map from errors to API answers: a status code and ``{"detail": "..."}``.

Services refuse with Django's exceptions: ``ValidationError`` (its ``code`` picks the
status from ``API_STATUS_BY_CODE``, else 400; ``params["retry_after"]``, in seconds, is
sent as ``Retry-After``), ``PermissionDenied`` (403) and ``Http404`` (404). API views let
them propagate: DRF calls ``api_exception_handler`` (``REST_FRAMEWORK["EXCEPTION_HANDLER"]``),
and requests under /api/ that never reach a DRF view (a malformed id in the path, an
unparsable request) get the same body from ``bad_request`` and ``page_not_found``.

``server_error`` (``handler500``) tells an unreachable or saturated database (no connection
free in the pool within ``DB_POOL_TIMEOUT``, PostgreSQL down or restarting) from a bug: the
first is a 503 with ``Retry-After`` ("busy, try again in a moment"), the second Django's 500.
"""

from __future__ import annotations

import sys
from typing import Any

from django.core.exceptions import RequestDataTooBig, ValidationError
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template import loader
from django.utils.translation import gettext as _
from django.views import defaults
from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

# A ValidationError's code -> the status of the API's answer (any other code: 400).
API_STATUS_BY_CODE = {
    # The learner may not use the AI until consent is given (tutor.conversations).
    "consent": status.HTTP_403_FORBIDDEN,
    # The state of a reply, not the request, refuses it: the same request succeeds later.
    "busy": status.HTTP_409_CONFLICT,
    "not_retryable": status.HTTP_409_CONFLICT,
    "unfinished": status.HTTP_409_CONFLICT,
    # Today's AI token budget is used up (ai.budget); Retry-After says when it resets.
    "ai_budget": status.HTTP_429_TOO_MANY_REQUESTS,
}


class ApiRefusal(APIException):
    """A service's ``ValidationError`` as DRF's exception, with the status of the map."""

    def __init__(self, error: ValidationError) -> None:
        code = getattr(error, "code", None) or "invalid"
        super().__init__(" ".join(error.messages), code=code)
        self.status_code = api_status(error)
        params = getattr(error, "params", None) or {}
        if "retry_after" in params:
            self.wait = params["retry_after"]  # DRF's handler sends it as Retry-After


def api_status(error: ValidationError) -> int:
    """The status of the API's answer to a service's ``ValidationError``."""
    return API_STATUS_BY_CODE.get(str(getattr(error, "code", "")), status.HTTP_400_BAD_REQUEST)


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's exception handler, which also answers Django's ``ValidationError``."""
    if isinstance(exc, ValidationError):
        exc = ApiRefusal(exc)
    return drf_exception_handler(exc, context)


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def _api_answer(detail: str, status_code: int) -> JsonResponse:
    return JsonResponse({"detail": detail}, status=status_code)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if isinstance(exception, RequestDataTooBig):
        if _is_api(request):
            return _api_answer(_("The request is too large."), 413)
        from config.error_pages import request_too_large

        return request_too_large(request, exception)
    if _is_api(request):
        return _api_answer(_("Bad request."), 400)
    return defaults.bad_request(request, exception)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return _api_answer(_("Not found."), 404)
    return defaults.page_not_found(request, exception)


# Seconds a client is asked to wait before trying again when the database is unavailable.
DATABASE_BUSY_RETRY_AFTER = 5


def server_error(request: HttpRequest) -> HttpResponse:
    """``handler500``: the database out of reach is 503 (try again), anything else 500.

    Django calls it while handling the exception, so ``sys.exc_info()`` is that exception.
    Like Django's own, the page renders without a request context: nothing in it can fail.
    """
    error = sys.exc_info()[1]
    if not isinstance(error, OperationalError | InterfaceError):
        if _is_api(request):
            return _api_answer(_("Server error."), 500)
        return defaults.server_error(request)
    if _is_api(request):
        response: HttpResponse = _api_answer(_("The service is busy. Try again in a moment."), 503)
    else:
        response = HttpResponse(loader.get_template("503.html").render(), status=503)
    response["Retry-After"] = str(DATABASE_BUSY_RETRY_AFTER)
    return response
