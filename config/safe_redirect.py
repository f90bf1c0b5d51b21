"""Where a ``next`` parameter may send the browser: only to this site.

Every view that reads a ``next`` (or any other return address) from the request goes
through ``safe_next_url``; an address on another host, another scheme, or one that a
browser would read as another host (``//evil.example``, ``/\\evil.example``) is dropped.
Django's own login and logout views already check their ``next`` the same way.
"""

from __future__ import annotations

from django.http import HttpRequest
from django.utils.http import url_has_allowed_host_and_scheme


def safe_next_url(request: HttpRequest, value: str | None) -> str:
    """``value`` when it leads back to this site, else ``""``."""
    if value and url_has_allowed_host_and_scheme(
        value, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return value
    return ""
