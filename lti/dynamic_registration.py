"""LTI Dynamic Registration (1EdTech LTI Dynamic Registration 1.0), the tool's side.

The LMS opens our registration URL with ``openid_configuration`` (and usually
``registration_token``). We fetch the platform's OpenID configuration, check it, POST our
client registration to its ``registration_endpoint`` (the token as Bearer), and store the
platform and deployment the answer names with ``lti.registration.platform_save``, the
same code as ``manage.py lti_platform_add``.

Who may register: only the holder of a one-time link an admin made with
``manage.py lti_registration_link`` (``LtiRegistrationLink``). The LMS opens the URL in
its own frame or window, where our session cookie is usually not sent, so a signed-in
staff session cannot be relied on; and a URL anyone could open would let anyone make us
trust their "platform" (and make our server fetch URLs of their choosing). The link is
secret, expires, and is spent by the first registration that succeeds.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from lti.models import LtiPlatform, LtiRegistrationLink, url_origin
from lti.registration import platform_save

logger = logging.getLogger(__name__)

TOOL_CONFIGURATION = "https://purl.imsglobal.org/spec/lti-tool-configuration"
PLATFORM_CONFIGURATION = "https://purl.imsglobal.org/spec/lti-platform-configuration"
# What the tool asks for: grade passback (AGS) and the roster (NRPS).
SCOPES = (
    "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem",
    "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly",
    "https://purl.imsglobal.org/spec/lti-ags/scope/score",
    "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly",
)
CLAIMS = ("iss", "sub", "name", "given_name", "family_name", "email")
REQUIRED_ENDPOINTS = (
    "registration_endpoint",
    "authorization_endpoint",
    "token_endpoint",
    "jwks_uri",
)
HTTP_TIMEOUT_SECONDS = 10
LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}
DEFAULT_LINK_HOURS = 72


class RegistrationError(Exception):
    """A registration that cannot go on, with words an admin can act on."""

    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


# --- The one-time link -------------------------------------------------------------------


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def link_create(
    *, hours: int = DEFAULT_LINK_HOURS, issuer: str = ""
) -> tuple[LtiRegistrationLink, str]:
    """A new one-time registration link; the token is returned once and never stored.
    ``issuer``: the exact issuer the LMS must present (instead of the host rule)."""
    token = secrets.token_urlsafe(32)
    link = LtiRegistrationLink.objects.create(
        token_hash=_token_hash(token),
        expires_at=timezone.now() + timedelta(hours=hours),
        issuer=issuer.strip(),
    )
    return link, token


def link_url(token: str, base: str | None = None) -> str:
    base = (base or settings.SITE_URL).rstrip("/")
    return base + reverse("lti:register", args=[token])


def link_open(token: str) -> LtiRegistrationLink | None:
    """The link for this token if it can still be used (not spent, not expired)."""
    if not token or len(token) > 200:
        return None
    return LtiRegistrationLink.objects.filter(
        token_hash=_token_hash(token), used_at__isnull=True, expires_at__gt=timezone.now()
    ).first()


def _link_claim(link: LtiRegistrationLink) -> bool:
    """Only one registration at a time goes through a link."""
    return bool(
        LtiRegistrationLink.objects.filter(pk=link.pk, used_at__isnull=True).update(
            used_at=timezone.now()
        )
    )


def _link_release(link: LtiRegistrationLink) -> None:
    LtiRegistrationLink.objects.filter(pk=link.pk, platform__isnull=True).update(used_at=None)


# --- Talking to the platform ---------------------------------------------------------------


def _check_length(value: str, what: str, limit: int) -> str:
    if len(value) > limit:
        raise RegistrationError(
            "value_too_long",
            _("The LMS's %(what)s is longer than %(limit)s characters; the tool cannot keep it.")
            % {"what": what, "limit": limit},
        )
    return value


def _check_url(value: Any, what: str) -> str:
    """An absolute URL we may call: https, or http on loopback only (test platforms)."""
    text = _check_length(str(value or "").strip(), what, 500)
    try:
        URLValidator(schemes=["http", "https"])(text)
    except ValidationError:
        raise RegistrationError(
            "invalid_url",
            _("The LMS gave no valid URL for %(what)s: %(value)r")
            % {"what": what, "value": text[:200]},
        ) from None
    parts = urlsplit(text)
    if parts.scheme != "https" and (parts.hostname or "") not in LOOPBACK_HOSTS:
        raise RegistrationError(
            "insecure_url",
            _("The LMS's %(what)s is not an https URL (%(value)s).")
            % {"what": what, "value": text[:200]},
        )
    return text


def _json_or_error(response: requests.Response, code: str, what: str) -> dict:
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise RegistrationError(
            code, _("The LMS's %(what)s is not a JSON object.") % {"what": what}
        )
    return data


def configuration_fetch(url: str, *, expected_issuer: str = "") -> dict:
    """The platform's OpenID configuration, checked: its issuer is on the host we fetched
    it from (the spec's rule) or, when the admin's link names one, exactly that issuer
    (Canvas Cloud's issuer is https://canvas.instructure.com on every school's host); and
    it names the four endpoints we need."""
    url = _check_url(url, _("OpenID configuration URL"))
    try:
        response = requests.get(
            url, timeout=HTTP_TIMEOUT_SECONDS, headers={"Accept": "application/json"}
        )
    except requests.RequestException as error:
        raise RegistrationError(
            "configuration_unreachable",
            _("The LMS's OpenID configuration at %(url)s could not be read (%(error)s).")
            % {"url": url, "error": type(error).__name__},
            status=502,
        ) from None
    if response.status_code != 200:
        raise RegistrationError(
            "configuration_unreachable",
            _("The LMS's OpenID configuration at %(url)s answered HTTP %(status)s.")
            % {"url": url, "status": response.status_code},
            status=502,
        )
    config = _json_or_error(response, "configuration_invalid", _("OpenID configuration"))
    issuer = str(config.get("issuer") or "")
    issuer_parts = urlsplit(issuer)
    if not issuer or issuer_parts.query or issuer_parts.fragment:
        raise RegistrationError(
            "issuer_invalid",
            _("The LMS's OpenID configuration has no usable issuer (%(issuer)r).")
            % {"issuer": issuer[:200]},
        )
    _check_url(issuer, _("issuer"))
    _check_length(issuer, _("issuer"), 255)
    if expected_issuer:
        if issuer != expected_issuer:
            raise RegistrationError(
                "issuer_mismatch",
                _(
                    "The LMS presents the issuer %(issuer)s, but this registration link was "
                    "made for %(expected)s. Make a link for the right issuer."
                )
                % {"issuer": issuer, "expected": expected_issuer},
            )
    elif (issuer_parts.hostname or "") != (urlsplit(url).hostname or ""):
        raise RegistrationError(
            "issuer_mismatch",
            _(
                "The issuer %(issuer)s is not on the host the configuration came from "
                "(%(host)s), so the tool cannot trust it. Check the LMS's base URL setting, "
                "or make a link for this exact issuer (lti_registration_link --issuer)."
            )
            % {"issuer": issuer, "host": urlsplit(url).hostname},
        )
    missing = [name for name in REQUIRED_ENDPOINTS if not config.get(name)]
    if missing:
        raise RegistrationError(
            "configuration_incomplete",
            _(
                "The LMS's OpenID configuration lacks %(names)s; it cannot register tools "
                "dynamically. Register the tool by hand (docs/lti.md)."
            )
            % {"names": ", ".join(missing)},
        )
    for name in REQUIRED_ENDPOINTS:
        config[name] = _check_url(config[name], name)
    return config


def registration_body(*, config: dict, tool_urls: dict[str, str], client_name: str) -> dict:
    """The client registration we POST (OpenID Connect Dynamic Client Registration with
    the LTI tool configuration)."""
    platform_config = config.get(PLATFORM_CONFIGURATION)
    platform_config = platform_config if isinstance(platform_config, dict) else {}
    supported_scopes = config.get("scopes_supported")
    scopes = [s for s in SCOPES if not isinstance(supported_scopes, list) or s in supported_scopes]
    launch_url = tool_urls["launch_url"]
    messages_supported = platform_config.get("messages_supported")
    supported_types = (
        {str(m.get("type")) for m in messages_supported if isinstance(m, dict)}
        if isinstance(messages_supported, list)
        else None
    )
    messages = [
        {"type": "LtiResourceLinkRequest", "target_link_uri": launch_url, "label": client_name},
    ]
    if supported_types is None or "LtiDeepLinkingRequest" in supported_types:
        messages.append(
            # No placements: their names differ per LMS; the admin picks them in its review.
            {"type": "LtiDeepLinkingRequest", "target_link_uri": launch_url, "label": client_name}
        )
    return {
        "application_type": "web",
        "response_types": ["id_token"],
        "grant_types": ["implicit", "client_credentials"],
        "initiate_login_uri": tool_urls["login_url"],
        "redirect_uris": [launch_url],
        "client_name": client_name,
        "jwks_uri": tool_urls["jwks_url"],
        "token_endpoint_auth_method": "private_key_jwt",
        "scope": " ".join(scopes),
        TOOL_CONFIGURATION: {
            "domain": urlsplit(launch_url).netloc,
            "target_link_uri": launch_url,
            "claims": list(CLAIMS),
            "messages": messages,
        },
    }


def registration_post(*, endpoint: str, body: dict, registration_token: str) -> dict:
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if registration_token:
        headers["Authorization"] = f"Bearer {registration_token}"
    try:
        response = requests.post(
            endpoint, data=json.dumps(body), headers=headers, timeout=HTTP_TIMEOUT_SECONDS
        )
    except requests.RequestException as error:
        raise RegistrationError(
            "registration_unreachable",
            _("The LMS's registration endpoint %(url)s could not be reached (%(error)s).")
            % {"url": endpoint, "error": type(error).__name__},
            status=502,
        ) from None
    if response.status_code not in (200, 201):
        raise RegistrationError(
            "registration_refused",
            _("The LMS refused the registration (HTTP %(status)s): %(detail)s")
            % {"status": response.status_code, "detail": response.text[:300] or "-"},
            status=502,
        )
    answer = _json_or_error(response, "registration_invalid", _("registration answer"))
    if not str(answer.get("client_id") or "").strip():
        raise RegistrationError(
            "registration_invalid",
            _("The LMS accepted the registration but sent no client ID."),
            status=502,
        )
    return answer


@dataclass
class Registered:
    platform: LtiPlatform
    created: bool
    deployment_id: str


def register(
    *,
    link: LtiRegistrationLink,
    openid_configuration: str,
    registration_token: str,
    tool_urls: dict[str, str],
    client_name: str,
) -> Registered:
    """Register with the platform through a one-time link; on any failure nothing is
    stored and the link stays usable."""
    if not _link_claim(link):
        raise RegistrationError(
            "link_used", _("This registration link was used meanwhile. Make a new one."), 404
        )
    try:
        config = configuration_fetch(openid_configuration, expected_issuer=link.issuer)
        body = registration_body(config=config, tool_urls=tool_urls, client_name=client_name)
        answer = registration_post(
            endpoint=config["registration_endpoint"],
            body=body,
            registration_token=registration_token,
        )
        tool_config = answer.get(TOOL_CONFIGURATION)
        tool_config = tool_config if isinstance(tool_config, dict) else {}
        deployment_id = str(tool_config.get("deployment_id") or "").strip()
        _check_length(deployment_id, _("deployment ID"), 255)
        client_id = _check_length(str(answer["client_id"]).strip(), _("client ID"), 255)
        platform_config = config.get(PLATFORM_CONFIGURATION)
        product = str(
            (platform_config if isinstance(platform_config, dict) else {}).get(
                "product_family_code"
            )
            or ""
        )[:100]
        host = urlsplit(config["issuer"]).hostname or ""
        with transaction.atomic():
            platform, created = platform_save(
                issuer=config["issuer"],
                client_id=client_id,
                deployment_ids=[deployment_id] if deployment_id else [],
                auth_login_url=config["authorization_endpoint"],
                auth_token_url=config["token_endpoint"],
                keyset_url=config["jwks_uri"],
                auth_audience=_check_length(
                    str(config.get("authorization_server") or ""), "authorization_server", 500
                ),
                name=f"{product} {host}".strip()[:200],
                frame_origins=[url_origin(openid_configuration)],
            )
            LtiRegistrationLink.objects.filter(pk=link.pk).update(platform=platform)
    except BaseException:
        _link_release(link)
        raise
    logger.info(
        "LTI dynamic registration: platform %s (%s, client %s, deployment %s)",
        platform.pk,
        platform.issuer,
        platform.client_id,
        deployment_id or "-",
    )
    return Registered(platform=platform, created=created, deployment_id=deployment_id)
