"""Login throttling per account and per IP address, counted in the shared cache (Redis)."""

from __future__ import annotations

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest


def _keys(request: HttpRequest, username: str) -> tuple[str, str]:
    address = request.META.get("REMOTE_ADDR", "unknown")
    return (f"login-fail:account:{username.strip().lower()}", f"login-fail:ip:{address}")


def login_is_throttled(*, request: HttpRequest, username: str) -> bool:
    account_key, ip_key = _keys(request, username)
    counts = cache.get_many([account_key, ip_key])
    return (
        counts.get(account_key, 0) >= settings.LOGIN_FAILURES_PER_ACCOUNT
        or counts.get(ip_key, 0) >= settings.LOGIN_FAILURES_PER_IP
    )


def login_failure_record(*, request: HttpRequest, username: str) -> None:
    for key in _keys(request, username):
        if cache.add(key, 1, timeout=settings.LOGIN_THROTTLE_SECONDS) is False:
            try:
                cache.incr(key)
            except ValueError:  # expired between add and incr
                cache.set(key, 1, timeout=settings.LOGIN_THROTTLE_SECONDS)


def login_failures_clear(*, request: HttpRequest, username: str) -> None:
    cache.delete(_keys(request, username)[0])
