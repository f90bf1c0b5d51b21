"""The request our middleware hands to views, as the type checker sees it."""

from __future__ import annotations

from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails


class HtmxRequest(HttpRequest):
    """A request after ``django_htmx.middleware.HtmxMiddleware``: ``request.htmx`` says
    whether htmx sent it (and which element asked). For annotations only: views receive
    Django's own ``HttpRequest``."""

    htmx: HtmxDetails
