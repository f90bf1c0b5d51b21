"""Pages shown inside an LMS's iframe.

A session that began with an LTI launch (and the LTI endpoints themselves) may be framed
by the registered platforms' origins only (``frame-ancestors``); every other page keeps
the site's ``frame-ancestors 'none'`` and ``X-Frame-Options: DENY``. Over HTTPS, such a
session's cookies are ``SameSite=None; Secure`` so the browser sends them from inside the
frame; plain sessions keep the default ``Lax``.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse

SESSION_PLATFORM = "lti_platform_id"
SESSION_LAUNCH = "lti_launch_id"
_ORIGINS_CACHE_KEY = "lti:frame-origins:%s"
_ORIGINS_CACHE_SECONDS = 60


def frame_origins(platform_id: int | None = None) -> list[str]:
    """Origins allowed to frame us: one platform's, or every active platform's."""
    from lti.models import LtiPlatform

    key = _ORIGINS_CACHE_KEY % (platform_id or "all")
    origins = cache.get(key)
    if origins is None:
        platforms = LtiPlatform.objects.active()
        if platform_id:
            platforms = platforms.filter(pk=platform_id)
        origins = sorted({o for p in platforms for o in p.allowed_frame_origins()})
        cache.set(key, origins, _ORIGINS_CACHE_SECONDS)
    return origins


def forget_frame_origins() -> None:
    cache.delete_many([_ORIGINS_CACHE_KEY % "all"])


def policy_with(
    *, frame_ancestors: list[str] | None = None, form_action: list[str] | None = None
) -> str:
    """The site's Content-Security-Policy with ``frame-ancestors`` and/or ``form-action``
    widened to the given origins (on top of ``'self'``)."""
    directives = [d.strip() for d in settings.CONTENT_SECURITY_POLICY.split(";") if d.strip()]
    replaced = {}
    if frame_ancestors is not None:
        replaced["frame-ancestors"] = " ".join(["'self'", *frame_ancestors])
    if form_action is not None:
        replaced["form-action"] = " ".join(["'self'", *form_action])
    out = []
    for directive in directives:
        name = directive.split()[0]
        out.append(f"{name} {replaced.pop(name)}" if name in replaced else directive)
    out += [f"{name} {value}" for name, value in replaced.items()]
    return "; ".join(out)


def _is_lti_request(request: HttpRequest) -> bool:
    if request.path.startswith("/lti/"):
        return True
    session = getattr(request, "session", None)
    return bool(session is not None and session.get(SESSION_PLATFORM))


# Marks a response whose view wrote its own Content-Security-Policy (csp_keep).
_KEEP_CSP = "lti_keep_csp"


def csp_keep(response: HttpResponse) -> None:
    """Tell the middleware that this response's Content-Security-Policy is final."""
    setattr(response, _KEEP_CSP, True)


class LtiEmbeddingMiddleware:
    """Placed before SessionMiddleware, so it sees the response after the session, CSRF,
    X-Frame-Options and CSP middlewares have written their headers and cookies."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not _is_lti_request(request):
            return response
        session = getattr(request, "session", None)
        platform_id = session.get(SESSION_PLATFORM) if session is not None else None
        if not getattr(response, _KEEP_CSP, False):
            response["Content-Security-Policy"] = policy_with(
                frame_ancestors=frame_origins(platform_id)
            )
        if "X-Frame-Options" in response:
            del response["X-Frame-Options"]
        if platform_id and request.is_secure():
            for name in (settings.SESSION_COOKIE_NAME, settings.CSRF_COOKIE_NAME):
                if name in response.cookies:
                    response.cookies[name]["samesite"] = "None"
                    response.cookies[name]["secure"] = True
        return response
