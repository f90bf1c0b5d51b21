"""Login throttling per account and per IP address, counted in the shared cache (Redis).

While Redis is unreachable, logins are not throttled (and the outage is logged) rather
than refused for everyone: an outage of the cache must not lock every user out.
"""

from __future__ import annotations

import logging

import redis
from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest

logger = logging.getLogger(__name__)

_UNAVAILABLE = (redis.ConnectionError, redis.TimeoutError)


def _keys(request: HttpRequest, username: str) -> tuple[str, str]:
    address = request.META.get("REMOTE_ADDR", "unknown")
    return (f"login-fail:account:{username.strip().lower()}", f"login-fail:ip:{address}")


def login_is_throttled(*, request: HttpRequest, username: str) -> bool:
    account_key, ip_key = _keys(request, username)
    try:
        counts = cache.get_many([account_key, ip_key])
    except _UNAVAILABLE as error:
        logger.warning("Login throttling is off: the cache is unreachable (%r)", error)
        return False
    return (
        counts.get(account_key, 0) >= settings.LOGIN_FAILURES_PER_ACCOUNT
        or counts.get(ip_key, 0) >= settings.LOGIN_FAILURES_PER_IP
    )


def login_failure_record(*, request: HttpRequest, username: str) -> None:
    try:
        for key in _keys(request, username):
            if cache.add(key, 1, timeout=settings.LOGIN_THROTTLE_SECONDS) is False:
                try:
                    cache.incr(key)
                except ValueError:  # expired between add and incr
                    cache.set(key, 1, timeout=settings.LOGIN_THROTTLE_SECONDS)
    except _UNAVAILABLE as error:
        logger.warning("A failed login was not counted: the cache is unreachable (%r)", error)


def login_failures_clear(*, request: HttpRequest, username: str) -> None:
    try:
        cache.delete(_keys(request, username)[0])
    except _UNAVAILABLE as error:
        logger.warning("Failed logins were not cleared: the cache is unreachable (%r)", error)
