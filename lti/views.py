"""The tool's endpoints: JWKS, OIDC login initiation, launch, the cookie check after a
launch (with its "open in a new tab" fallback), and the deep-linking picker."""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth import login
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from pylti1p3.deep_link import DeepLink
from pylti1p3.deep_link_resource import DeepLinkResource
from pylti1p3.lineitem import LineItem

from grading.models import Assignment
from learners.models import Membership, User
from lti import keys
from lti.embedding import (
    SESSION_LAUNCH,
    SESSION_PLATFORM,
    csp_keep,
    frame_origins,
    policy_with,
)
from lti.launch import (
    DEPLOYMENT_CLAIM,
    LaunchError,
    ToolMessageLaunch,
    ToolOIDCLogin,
    launch_storage,
    log_refused,
)
from lti.models import LtiPlatform, url_origin
from lti.services import Target, launch_accept
from lti.tool_config import platform_registration

if TYPE_CHECKING:
    from learners.models import Course


logger = logging.getLogger(__name__)

DEEP_LINKING_SETTINGS = "https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings"
_TICKET_KEY = "lti:ticket:%s"
_BACKEND = "django.contrib.auth.backends.ModelBackend"


def tool_urls(request: HttpRequest | None = None) -> dict[str, str]:
    """The three URLs an LMS administrator copies into the LMS."""
    base = request.build_absolute_uri("/").rstrip("/") if request else settings.SITE_URL.rstrip("/")
    return {
        "login_url": base + reverse("lti:login"),
        "launch_url": base + reverse("lti:launch"),
        "jwks_url": base + reverse("lti:jwks"),
    }


def error_page(request: HttpRequest, error: LaunchError) -> HttpResponse:
    return render(
        request,
        "lti/error.html",
        {"message": error.message, "code": error.code},
        status=error.status,
    )


@require_GET
def jwks(request: HttpRequest) -> JsonResponse:
    return JsonResponse(keys.jwks())


@csrf_exempt
@require_http_methods(["GET", "POST"])
def login_initiation(request: HttpRequest) -> HttpResponse:
    """OIDC third-party login: back to the platform with a state and nonce we keep."""
    oidc = ToolOIDCLogin(request)
    try:
        target = request.GET.get("target_link_uri") or request.POST.get("target_link_uri") or ""
        return oidc.pass_params_to_launch({"target_link_uri": target[:2000]}).redirect(
            tool_urls(request)["launch_url"]
        )
    except LaunchError as error:
        log_refused(
            error, {"iss": request.GET.get("iss") or request.POST.get("iss")}, stage="login"
        )
        return error_page(request, error)
    except Exception as error:  # pylti1p3's own OIDCException and friends
        refused = LaunchError(
            "invalid_login",
            _("The LMS's login request is not valid: %(detail)s") % {"detail": error},
        )
        log_refused(refused, {"iss": request.GET.get("iss")}, stage="login")
        return error_page(request, refused)


def _ticket_issue(*, user: User, next_url: str, platform_id: int, launch_id: str) -> str:
    ticket = secrets.token_urlsafe(24)
    cache.set(
        _TICKET_KEY % ticket,
        {"user": user.pk, "next": next_url, "platform": platform_id, "launch": launch_id},
        settings.LTI_TICKET_SECONDS,
    )
    return ticket


def _ticket_take(ticket: str) -> dict | None:
    if not ticket or len(ticket) > 100:
        return None
    key = _TICKET_KEY % ticket
    data = cache.get(key)
    if data is None or not cache.delete(key):  # only one taker
        return None
    return data


def _ticket_expired() -> LaunchError:
    return LaunchError(
        "ticket_expired",
        _("This launch link has expired or was already used. Open the tool from the LMS again."),
    )


def _sign_in(request: HttpRequest, *, user: User, platform_id: int, launch_id: str) -> None:
    login(request, user, backend=_BACKEND)
    request.session[SESSION_PLATFORM] = platform_id
    request.session[SESSION_LAUNCH] = launch_id


@csrf_exempt
@require_POST
def launch(request: HttpRequest) -> HttpResponse:
    """The id_token POST: checked, then the person signed in and sent to the resource."""
    message = ToolMessageLaunch(request)
    try:
        message.validate()
        platform = message.platform
        assert platform is not None  # validate() found it, or raised LaunchError
        claims = message.claims()
        result = launch_accept(platform=platform, claims=claims)
        if message.is_deep_link_launch():
            if result.role != Membership.Role.TEACHER:
                raise LaunchError(
                    "deep_link_not_teacher",
                    _("Only a teacher of the course can choose what to place from the tutor."),
                    status=403,
                )
            next_url = reverse("lti:deep-link")
        else:
            next_url = result.target.url(result.context.course)
    except LaunchError as error:
        log_refused(error, message.claims(), stage="launch")
        return error_page(request, error)
    if result.role == Membership.Role.TEACHER and result.context.memberships_url:
        from lti.tasks import roster_sync_enqueue

        roster_sync_enqueue(context_id=result.context.pk)
    launch_id = message.get_launch_id()
    _sign_in(request, user=result.user, platform_id=platform.pk, launch_id=launch_id)
    ticket = _ticket_issue(
        user=result.user, next_url=next_url, platform_id=platform.pk, launch_id=launch_id
    )
    logger.info(
        "LTI launch: platform %s context %s user %s as %s → %s",
        platform.pk,
        result.context.context_id,
        result.user.pk,
        result.role,
        result.target,
    )
    return HttpResponseRedirect(reverse("lti:landing") + "?ticket=" + ticket)


@require_GET
def landing(request: HttpRequest) -> HttpResponse:
    """Did the session cookie survive the iframe? Then on to the resource; if not, the
    first-party fallback: open the tutor in a new tab, where cookies work."""
    ticket = request.GET.get("ticket", "")
    data = cache.get(_TICKET_KEY % ticket) if ticket and len(ticket) <= 100 else None
    if data is None:
        return error_page(
            request,
            _ticket_expired(),
        )
    if request.user.is_authenticated and request.user.pk == data["user"]:
        _ticket_take(ticket)
        return HttpResponseRedirect(data["next"])
    return render(request, "lti/open_in_new_tab.html", {"ticket": ticket})


@csrf_exempt  # posted from a frame whose cookies the browser dropped; the ticket is the secret
@require_POST
def resume(request: HttpRequest) -> HttpResponse:
    """The new tab: sign in with the one-time ticket and go where the launch led."""
    data = _ticket_take(request.POST.get("ticket", ""))
    user = User.objects.filter(pk=data["user"], is_active=True).first() if data else None
    if data is None or user is None:
        return error_page(
            request,
            _ticket_expired(),
        )
    _sign_in(request, user=user, platform_id=data["platform"], launch_id=data["launch"])
    return HttpResponseRedirect(data["next"])


def _deep_link_launch(request: HttpRequest) -> tuple[dict, LtiPlatform, User] | None:
    launch_id = request.session.get(SESSION_LAUNCH)
    platform_id = request.session.get(SESSION_PLATFORM)
    if not launch_id or not platform_id or not request.user.is_authenticated:
        return None
    storage = launch_storage()
    claims = storage.get_value(launch_id)
    platform = LtiPlatform.objects.active().filter(pk=platform_id).first()
    if not claims or platform is None or DEEP_LINKING_SETTINGS not in claims:
        return None
    return claims, platform, request.user


def _deep_link_choices(course: Course) -> list[dict]:
    choices: list[dict[str, Any]] = [
        {"value": "tutor", "title": _("Course tutor: %(course)s") % {"course": course}},
        {"value": "practice", "title": _("Practice: %(course)s") % {"course": course}},
    ]
    for assignment in Assignment.objects.filter(course=course).prefetch_related("criteria"):
        maximum = sum((c.max_score for c in assignment.criteria.all()), 0)
        choices.append(
            {
                "value": f"assignment:{assignment.pk}",
                "title": assignment.title,
                "maximum": maximum,
                "assignment": assignment,
            }
        )
    return choices


@require_http_methods(["GET", "POST"])
def deep_link(request: HttpRequest) -> HttpResponse:
    """The teacher picks what to place in the LMS; the LMS gets a signed resource link."""
    found = _deep_link_launch(request)
    if found is None:
        return error_page(
            request,
            LaunchError(
                "no_deep_link",
                _(
                    "There is no placement in progress. Start again from the LMS's “add tool” "
                    "screen."
                ),
            ),
        )
    claims, platform, user = found
    from lti.models import LtiContext

    context_id = (claims.get("https://purl.imsglobal.org/spec/lti/claim/context") or {}).get("id")
    link = LtiContext.objects.select_related("course").get(platform=platform, context_id=context_id)
    course = link.course
    if not Membership.objects.filter(
        user=user, course=course, role=Membership.Role.TEACHER
    ).exists():
        return error_page(
            request,
            LaunchError(
                "deep_link_not_teacher",
                _("Only a teacher of the course can choose what to place from the tutor."),
                status=403,
            ),
        )
    choices = _deep_link_choices(course)
    if request.method == "GET":
        return render(request, "lti/deep_link.html", {"course": course, "choices": choices})
    picked = next((c for c in choices if c["value"] == request.POST.get("target")), None)
    if picked is None:
        return render(
            request,
            "lti/deep_link.html",
            {"course": course, "choices": choices, "error": _("Choose one of the items.")},
            status=400,
        )
    target = Target.parse(picked["value"])
    resource = (
        DeepLinkResource()
        .set_url(tool_urls(request)["launch_url"])
        .set_title(str(picked["title"]))
        .set_custom_params({"target": str(target)})
    )
    if target.kind == "assignment" and picked["maximum"]:
        resource.set_lineitem(
            LineItem()
            .set_label(str(picked["title"]))
            .set_score_maximum(float(picked["maximum"]))
            .set_resource_id(f"assignment-{target.assignment_id}")
        )
    settings_claim = claims[DEEP_LINKING_SETTINGS]
    response_jwt = DeepLink(
        platform_registration(platform), claims[DEPLOYMENT_CLAIM], settings_claim
    ).get_response_jwt([resource])
    # The placement is done: the same launch cannot place a second item.
    launch_storage().consume(request.session.pop(SESSION_LAUNCH))
    return_url = settings_claim["deep_link_return_url"]
    response = render(
        request,
        "lti/deep_link_return.html",
        {"return_url": return_url, "jwt": response_jwt, "title": picked["title"]},
    )
    response["Content-Security-Policy"] = policy_with(
        frame_ancestors=frame_origins(platform.pk), form_action=[url_origin(return_url)]
    )
    csp_keep(response)
    return response
