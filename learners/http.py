"""Requests to views that only a signed-in user reaches, as the type checker sees them.

For annotations only: Django and DRF hand views their own request classes. A view behind
``login_required`` (or DRF's ``IsAuthenticated``) takes ``request: UserRequest`` (or
``UserApiRequest``), so ``request.user`` is our ``User``, never ``AnonymousUser``.
"""

from __future__ import annotations

from rest_framework.request import Request

from config.http import HtmxRequest
from learners.models import User


class UserRequest(HtmxRequest):
    """A request to a view behind ``login_required``."""

    user: User


class UserApiRequest(Request):
    """A request to an API view whose permissions include ``IsAuthenticated``."""

    user: User
