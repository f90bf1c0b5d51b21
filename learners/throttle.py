"""Login throttling that slows guessing down without locking out the right person.

The rules (issue 16, item 2; OWASP's "device cookies" for the last one):

- Failures count per account: failures on other accounts never refuse a password, so a
  school behind one NAT address is not locked out by one student guessing.
- A browser without this account's device cookie counts in two places: its address
  (account, address) and all such browsers together (account). After
  LOGIN_FREE_FAILURES failures from one address, and LOGIN_ACCOUNT_FREE_FAILURES from
  all of them, every further failure makes the next try wait longer:
  LOGIN_DELAY_FIRST_SECONDS, then twice that, up to LOGIN_DELAY_MAX_SECONDS. While it
  waits, a try is answered 429 with ``Retry-After`` and the password is not checked.
- A browser that signed this account in before holds a signed device cookie naming it.
  Its failures count for that cookie alone, and nobody else's failures ever make it
  wait: the teacher's own browser still signs in while someone guesses her password.
- Failures are forgotten LOGIN_FAILURE_MEMORY_SECONDS after the last one; a sign-in
  clears its own address's or device's count. The rows (LoginThrottle) are where
  administrators see who waits, and lift a wait.

The client address comes from config/client_address.py (X-Forwarded-For only from
TRUSTED_PROXIES).
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.core import signing
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from config.client_address import client_address
from learners.models import LoginThrottle

if TYPE_CHECKING:
    from learners.models import User


DEVICE_COOKIE = "login_device"
_DEVICE_SALT = "learners.throttle.device"
_DEVICES_PER_BROWSER = 10


@dataclass(frozen=True)
class LoginAttempt:
    """Who is trying to sign in to which account."""

    username: str  # as typed, lower case: "Teacher" and "teacher" count together
    address: str
    device: str  # the device cookie's id for this account, or "" for a new browser

    def counters(self) -> list[tuple[str, str]]:
        """The (scope, client) counts a failure of this attempt goes to."""
        if self.device:
            return [(LoginThrottle.Scope.DEVICE, self.device)]
        return [(LoginThrottle.Scope.ADDRESS, self.address), (LoginThrottle.Scope.ACCOUNT, "")]


def _username_key(username: str) -> str:
    return username.strip().lower()[:150]


def _devices(request: HttpRequest) -> dict[str, str]:
    """This browser's device ids by username, from a valid signed cookie; else none."""
    raw = request.COOKIES.get(DEVICE_COOKIE)
    if not raw:
        return {}
    max_age = timedelta(days=settings.LOGIN_DEVICE_COOKIE_DAYS)
    try:
        value = signing.loads(raw, salt=_DEVICE_SALT, max_age=max_age)
    except signing.BadSignature:  # forged, altered or expired: a new browser
        return {}
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items() if isinstance(v, str) and v}


def login_attempt(request: HttpRequest, username: str) -> LoginAttempt:
    key = _username_key(username)
    return LoginAttempt(
        username=key, address=client_address(request), device=_devices(request).get(key, "")
    )


def login_delay(failures: int, free: int) -> int:
    """Seconds to wait after ``failures`` failures, of which ``free`` cost nothing."""
    if failures <= free:
        return 0
    doublings = min(failures - free - 1, 30)
    return min(settings.LOGIN_DELAY_MAX_SECONDS, settings.LOGIN_DELAY_FIRST_SECONDS * 2**doublings)


def _free_failures(scope: str) -> int:
    if scope == LoginThrottle.Scope.ACCOUNT:
        return settings.LOGIN_ACCOUNT_FREE_FAILURES
    return settings.LOGIN_FREE_FAILURES


def _rows(attempt: LoginAttempt):
    match = Q()
    for scope, client in attempt.counters():
        match |= Q(scope=scope, client=client)
    return LoginThrottle.objects.filter(match, username=attempt.username)


def login_wait_seconds(attempt: LoginAttempt, *, now: datetime | None = None) -> int:
    """Seconds this client must wait before trying this account again; 0: it may try."""
    now = now or timezone.now()
    until = (
        _rows(attempt)
        .filter(blocked_until__gt=now)
        .order_by("-blocked_until")
        .values_list("blocked_until", flat=True)
        .first()
    )
    return math.ceil((until - now).total_seconds()) if until else 0


def _count_failure(attempt: LoginAttempt, scope: str, client: str, now: datetime) -> int:
    forget_before = now - timedelta(seconds=settings.LOGIN_FAILURE_MEMORY_SECONDS)
    for _ in range(2):  # a concurrent first failure may create the row between get and create
        try:
            with transaction.atomic():
                row, _created = LoginThrottle.objects.select_for_update().get_or_create(
                    username=attempt.username,
                    scope=scope,
                    client=client,
                    defaults={"last_failure_at": now},
                )
                if row.last_failure_at < forget_before:
                    row.failures = 0
                row.failures += 1
                row.last_failure_at = now
                delay = login_delay(row.failures, _free_failures(scope))
                row.blocked_until = now + timedelta(seconds=delay) if delay else None
                row.save()
                return delay
        except IntegrityError:
            continue
    return 0


def login_failure_record(attempt: LoginAttempt) -> int:
    """Count a failed sign-in; returns the seconds the next try from here must wait."""
    now = timezone.now()
    LoginThrottle.objects.filter(
        last_failure_at__lt=now - timedelta(seconds=settings.LOGIN_FAILURE_MEMORY_SECONDS)
    ).delete()
    waits = [_count_failure(attempt, scope, client, now) for scope, client in attempt.counters()]
    return login_wait_seconds(attempt, now=now) if any(waits) else 0


def login_success_record(attempt: LoginAttempt) -> None:
    """A right password: this address's or device's count starts again (the count of all
    new browsers stays, so a guesser cannot reset it by signing in to an account of his)."""
    scope, client = attempt.counters()[0]
    LoginThrottle.objects.filter(username=attempt.username, scope=scope, client=client).delete()


def login_device_remember(request: HttpRequest, response: HttpResponse, username: str) -> None:
    """Give this browser a signed device cookie for ``username`` (kept with its others)."""
    key = _username_key(username)
    devices = _devices(request)
    devices[key] = devices.get(key) or secrets.token_urlsafe(16)
    # The most recent accounts of this browser, this one last.
    ordered = [name for name in devices if name != key][-(_DEVICES_PER_BROWSER - 1) :] + [key]
    value = signing.dumps({name: devices[name] for name in ordered}, salt=_DEVICE_SALT)
    response.set_cookie(
        DEVICE_COOKIE,
        value,
        max_age=settings.LOGIN_DEVICE_COOKIE_DAYS * 24 * 3600,
        secure=settings.SESSION_COOKIE_SECURE,
        httponly=True,
        samesite="Lax",
    )


def login_throttle_lift(rows, *, actor: User) -> int:
    """An administrator lifts these waits: the counts start again, and who lifted is kept."""
    return rows.update(
        failures=0,
        blocked_until=None,
        lifted_at=timezone.now(),
        lifted_by=getattr(actor, "username", str(actor))[:150],
    )
