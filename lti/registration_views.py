"""The Dynamic Registration URL an LMS opens (``lti:register``): a one-time link made by
``manage.py lti_registration_link``; see ``lti/dynamic_registration.py`` for the rules."""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from lti.dynamic_registration import RegistrationError, link_open, register
from lti.embedding import csp_keep, policy_with
from lti.models import url_origin
from lti.views import tool_urls

logger = logging.getLogger(__name__)


def _framed_by(response: HttpResponse, openid_configuration: str) -> HttpResponse:
    """The LMS shows this page in its own frame: let the origin that sent us here frame it
    (the platform is not registered yet, so the middleware would not know it)."""
    origin = url_origin(openid_configuration)
    response["Content-Security-Policy"] = policy_with(
        frame_ancestors=[origin] if origin.startswith(("https://", "http://")) else []
    )
    csp_keep(response)
    return response


def _refused(request: HttpRequest, error: RegistrationError, openid_configuration: str):
    logger.warning(
        "LTI dynamic registration refused (%s) for %s: %s",
        error.code,
        openid_configuration[:300],
        error.message,
    )
    response = render(
        request,
        "lti/registration_error.html",
        {"message": error.message, "code": error.code},
        status=error.status,
    )
    return _framed_by(response, openid_configuration)


@require_GET
def register_view(request: HttpRequest, token: str) -> HttpResponse:
    openid_configuration = request.GET.get("openid_configuration", "")[:2000]
    link = link_open(token)
    if link is None:
        return _refused(
            request,
            RegistrationError(
                "link_invalid",
                _(
                    "This registration link is unknown, expired or already used. Make a new "
                    "one with “manage.py lti_registration_link” and paste it into the LMS."
                ),
                status=404,
            ),
            openid_configuration,
        )
    if not openid_configuration:
        return _refused(
            request,
            RegistrationError(
                "no_configuration",
                _(
                    "The LMS opened this link without an openid_configuration parameter. "
                    "Paste the link into the LMS's Dynamic Registration screen rather than "
                    "opening it in a browser."
                ),
            ),
            openid_configuration,
        )
    try:
        registered = register(
            link=link,
            openid_configuration=openid_configuration,
            registration_token=request.GET.get("registration_token", "")[:4000],
            # SITE_URL's, as lti_platform_add prints them (not the Host of this request).
            tool_urls=tool_urls(),
            client_name=_("Tutoring platform"),
        )
    except RegistrationError as error:
        return _refused(request, error, openid_configuration)
    response = render(
        request,
        "lti/registered.html",
        {
            "platform": registered.platform,
            "created": registered.created,
            "deployment_id": registered.deployment_id,
        },
    )
    return _framed_by(response, openid_configuration)
