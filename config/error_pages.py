"""Error pages in the product's layout that keep what the user typed.

Django's defaults for these answer with a bare line ("Bad Request (400)") or, for a CSRF
failure, a technical page; a student who had just written an essay lost it. Here:

- :func:`csrf_failure` (``CSRF_FAILURE_VIEW``): an expired session or a stale form. When
  the refused request was one of our essay forms, the posted essay is put back in a form
  with a fresh token, so one click sends it again. Only the essay's text field is echoed,
  only for our own essay URL, escaped like any other text, and the page cannot be framed.
- :func:`request_too_large`: a body over ``DATA_UPLOAD_MAX_MEMORY_SIZE``; the server
  refuses to read it, so the page says so and points back to the form, where the draft
  the browser kept as it was typed (``static/js/drafts.js``) is restored.

403, 404 and 500 are ``templates/403.html``, ``404.html`` and ``500.html``; 500 renders
without a request (Django renders it with an empty context).
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import Resolver404, resolve

# URL names of forms whose posted essay text a failure page gives back.
ESSAY_FORMS = {"grading:submit"}
ESSAY_FIELD = "text"


def essay_form_of(request: HttpRequest) -> str | None:
    """The URL name of our essay form this request was posted to, else None."""
    try:
        match = resolve(request.path_info)
    except Resolver404:
        return None
    return match.view_name if match.view_name in ESSAY_FORMS else None


def _assignment_url(request: HttpRequest) -> str:
    """The page the essay form lives on: the submit URL without its last segment."""
    return request.path.rstrip("/").rsplit("/", 1)[0] + "/"


def posted_essay(request: HttpRequest) -> str:
    """The essay text of a refused POST to one of our essay forms ('' otherwise)."""
    if request.method != "POST" or essay_form_of(request) is None:
        return ""
    try:
        text = request.POST.get(ESSAY_FIELD, "")
    except RequestDataTooBig:  # never read a body the limit refused
        return ""
    return text.replace("\x00", "")


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    essay_form = essay_form_of(request) if request.method == "POST" else None
    context = {
        "essay_text": posted_essay(request),
        "essay_form": essay_form is not None,
        "form_action": request.path if essay_form else "",
        "back_url": _assignment_url(request) if essay_form else "/",
        "signed_in": request.user.is_authenticated if hasattr(request, "user") else False,
    }
    return render(request, "errors/csrf_failure.html", context, status=403)


def request_too_large(request: HttpRequest, exception: Exception) -> HttpResponse:
    essay_form = essay_form_of(request)
    context = {
        "limit_mb": settings.DATA_UPLOAD_MAX_MEMORY_SIZE / (1024 * 1024),
        "essay_form": essay_form is not None,
        "form_action": request.path if essay_form else "",
        "back_url": _assignment_url(request) if essay_form else "/",
    }
    return render(request, "errors/request_too_large.html", context, status=413)
