"""Checking an LTI launch: pylti1p3 does the protocol; we make each check strict (state
and nonce used once, signature refreshed on an unknown key, aud/azp/exp/iat required)
and say what is wrong in words an administrator can act on.

The OIDC state and nonce live in the cache (Redis), not in a cookie-bound session, so a
launch also works when the browser blocks third-party cookies in the LMS's iframe; each
is deleted as it is checked, so a replayed launch fails.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any, cast

import jwt
from django.conf import settings
from django.core.cache import cache
from django.utils.translation import gettext as _
from pylti1p3.contrib.django import DjangoMessageLaunch, DjangoOIDCLogin
from pylti1p3.contrib.django.launch_data_storage.cache import DjangoCacheDataStorage
from pylti1p3.exception import LtiException

from lti.models import LtiPlatform
from lti.tool_config import DatabaseToolConf, find_platform

logger = logging.getLogger(__name__)

CLAIM = "https://purl.imsglobal.org/spec/lti/claim/"
DEPLOYMENT_CLAIM = CLAIM + "deployment_id"
MESSAGE_TYPE_CLAIM = CLAIM + "message_type"
CONTEXT_CLAIM = CLAIM + "context"
ROLES_CLAIM = CLAIM + "roles"
CUSTOM_CLAIM = CLAIM + "custom"
RESOURCE_LINK_CLAIM = CLAIM + "resource_link"
LAUNCH_PRESENTATION_CLAIM = CLAIM + "launch_presentation"
NRPS_CLAIM = "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"
AGS_CLAIM = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"

# What may be written to the log about a launch: never the id_token, state or nonce.
_LOGGED_CLAIMS = ("iss", "aud", "azp", "sub", "exp", "iat", DEPLOYMENT_CLAIM, MESSAGE_TYPE_CLAIM)


class LaunchError(LtiException):
    """A launch we refuse, with the reason for the administrator (``message``) and a
    short ``code`` for tests and logs."""

    def __init__(self, code: str, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


class UnsharedCacheStorage(DjangoCacheDataStorage):
    """pylti1p3's cache storage keyed by state and nonce alone, never by a cookie: inside
    an iframe the browser may drop every cookie we set."""

    def get_session_cookie_name(self):
        return None

    def consume(self, key: str) -> bool:
        """Delete ``key``; True only for the one caller that found it there."""
        return bool(self._get_cache().delete(self._prepare_key(key)))


def launch_storage() -> UnsharedCacheStorage:
    return UnsharedCacheStorage()


def loggable_claims(body: dict[str, Any] | None) -> dict[str, Any]:
    body = body or {}
    found = {name.rsplit("/", 1)[-1]: body[name] for name in _LOGGED_CLAIMS if name in body}
    context = body.get(CONTEXT_CLAIM)
    if isinstance(context, dict):
        found["context_id"] = context.get("id")
    return found


class ToolOIDCLogin(DjangoOIDCLogin):
    """The first leg: the platform asks us to log a user in; we send them back to its
    authorisation endpoint with a fresh state and nonce."""

    def __init__(self, request):
        super().__init__(request, DatabaseToolConf(), launch_data_storage=launch_storage())

    def validate_oidc_login(self):
        issuer = self._get_request_param("iss")
        if not issuer:
            raise LaunchError("missing_issuer", _("The LMS did not say who it is (no iss)."))
        if not self._get_request_param("login_hint"):
            raise LaunchError("missing_login_hint", _("The LMS sent no login_hint."))
        client_id = self._get_request_param("client_id") or None
        if find_platform(issuer, client_id) is None:
            raise unknown_platform_error(issuer, client_id)
        return super().validate_oidc_login()


def unknown_platform_error(issuer: str, client_id: str | None) -> LaunchError:
    known = list(LtiPlatform.objects.filter(issuer=issuer).values_list("client_id", "is_active"))
    if not known:
        return LaunchError(
            "unknown_issuer",
            _(
                "No LMS is registered with issuer %(issuer)s. An administrator can register "
                "it in the administration or with manage.py lti_platform_add."
            )
            % {"issuer": issuer},
            status=403,
        )
    if client_id and client_id not in {cid for cid, _active in known}:
        return LaunchError(
            "wrong_audience",
            _(
                "This launch is for client ID %(client_id)s, which is not registered for "
                "issuer %(issuer)s (registered client IDs: %(known)s)."
            )
            % {
                "client_id": client_id,
                "issuer": issuer,
                "known": ", ".join(cid for cid, _active in known),
            },
            status=403,
        )
    return LaunchError(
        "inactive_platform",
        _(
            "The registration of issuer %(issuer)s is switched off (or ambiguous without a "
            "client ID)."
        )
        % {"issuer": issuer},
        status=403,
    )


class ToolMessageLaunch(DjangoMessageLaunch):
    """The second leg: the id_token the platform posts back, checked strictly."""

    def __init__(self, request):
        super().__init__(request, DatabaseToolConf(), launch_data_storage=launch_storage())
        self.set_launch_data_lifetime(settings.LTI_LAUNCH_DATA_SECONDS)
        self.set_public_key_caching(
            launch_storage(), cache_lifetime=settings.LTI_KEYSET_CACHE_SECONDS
        )
        self.platform: LtiPlatform | None = None

    @property
    def storage(self) -> UnsharedCacheStorage:
        return self._session_service.data_storage

    def claims(self) -> dict[str, Any]:
        """The body of the token (after ``validate``; before it, unverified)."""
        return cast(dict[str, Any], self._jwt.get("body", {}) or {})

    def validate(self):
        self._validated = True
        try:
            return (
                self.validate_state()
                .validate_jwt_format()
                .validate_nonce()
                .validate_registration()
                .validate_jwt_signature()
                .validate_deployment()
                .validate_message()
                .save_launch_data()
            )
        except LaunchError:
            self._validated = False
            raise
        except LtiException as error:
            self._validated = False
            raise LaunchError(
                "invalid_message",
                _("The launch message is not valid LTI 1.3: %(detail)s") % {"detail": error},
            ) from error

    def validate_state(self):
        state = self._get_request_param("state")
        if not state:
            raise LaunchError(
                "missing_state", _("The launch has no state. Start it again from the LMS.")
            )
        # Saved at login (pass_params_to_launch) and deleted here: a state works once.
        if not self.storage.consume(self._session_service._get_key(state)):
            raise LaunchError(
                "unknown_state",
                _(
                    "This launch was already used or has expired (its state is not one we "
                    "issued in the last few minutes). Open the link in the LMS again."
                ),
            )
        return self

    def validate_jwt_format(self):
        if not self._get_request_param("id_token"):
            raise LaunchError("missing_id_token", _("The LMS posted no id_token."))
        try:
            return super().validate_jwt_format()
        except LtiException as error:
            raise LaunchError(
                "malformed_token", _("The id_token the LMS sent is not a readable JWT.")
            ) from error

    def validate_nonce(self):
        nonce = self.claims().get("nonce")
        if not nonce:
            raise LaunchError("missing_nonce", _("The launch has no nonce."))
        if not self.storage.consume(self._session_service._get_key("nonce", str(nonce))):
            raise LaunchError(
                "replayed_nonce",
                _(
                    "This launch was already used (its nonce was seen before, or never "
                    "issued by us). Each launch works once: open the link in the LMS again."
                ),
            )
        return self

    def _audiences(self) -> list[str]:
        aud = self.claims().get("aud")
        return [str(a) for a in aud] if isinstance(aud, list) else [str(aud or "")]

    def get_client_id(self) -> str:
        issuer = str(self.claims().get("iss") or "")
        audiences = self._audiences()
        for audience in audiences:
            if find_platform(issuer, audience):
                return audience
        return audiences[0]

    def validate_registration(self):
        body = self.claims()
        issuer = str(body.get("iss") or "")
        if not issuer:
            raise LaunchError("missing_issuer", _("The launch does not say who sent it (no iss)."))
        client_id = self.get_client_id()
        self.platform = find_platform(issuer, client_id)
        if self.platform is None:
            raise unknown_platform_error(issuer, client_id or "?")
        azp = body.get("azp")
        if (azp is not None or len(self._audiences()) > 1) and azp != client_id:
            raise LaunchError(
                "wrong_azp",
                _("The launch's authorised party (azp %(azp)s) is not our client ID %(client_id)s.")
                % {"azp": azp, "client_id": client_id},
                status=403,
            )
        return super().validate_registration()

    def _keyset_cache_key(self) -> str:
        registration = self._registration
        assert registration is not None  # looked up by validate_registration, which runs first
        url = registration.get_key_set_url() or ""
        return "key-set-url-" + hashlib.md5(url.encode("utf-8")).hexdigest()  # noqa: S324

    def get_public_key(self):
        """The platform key named by the token's ``kid``; an unknown kid refetches the
        keyset once (the platform may have rotated its keys) before giving up."""
        try:
            return super().get_public_key()
        except LtiException as error:
            if "Unable to find public key" not in str(error):
                raise self._keyset_error(error) from error
        cache.delete(self.storage._prepare_key(self._keyset_cache_key()))
        self._registration.set_key_set(None)
        try:
            return super().get_public_key()
        except LtiException as error:
            if "Unable to find public key" not in str(error):
                raise self._keyset_error(error) from error
            raise LaunchError(
                "unknown_kid",
                _(
                    "The launch was signed with key %(kid)s, which is not in the keyset "
                    "issuer %(issuer)s publishes at %(url)s."
                )
                % {
                    "kid": self._jwt.get("header", {}).get("kid"),
                    "issuer": self.platform.issuer,
                    "url": self.platform.keyset_url,
                },
                status=403,
            ) from error

    def _keyset_error(self, error: Exception) -> LaunchError:
        platform = self.platform
        return LaunchError(
            "keyset_unavailable",
            _("The keyset of issuer %(issuer)s at %(url)s could not be used: %(detail)s")
            % {
                "issuer": platform.issuer if platform else "?",
                "url": platform.keyset_url if platform else "?",
                "detail": error,
            },
            status=502,
        )

    def validate_jwt_signature(self):
        public_key, algorithm = self.get_public_key()
        try:
            jwt.decode(
                self._get_id_token(),
                public_key,
                algorithms=[algorithm],
                audience=self.get_client_id(),
                leeway=settings.LTI_CLOCK_SKEW_SECONDS,
                options={"require": ["exp", "iat", "aud", "iss", "sub"], "verify_aud": True},
            )
        except jwt.ExpiredSignatureError as error:
            raise LaunchError(
                "expired",
                _(
                    "The launch has expired (its exp is in the past). If it happens on every "
                    "launch, check the clocks of the LMS and of this server."
                ),
            ) from error
        except jwt.ImmatureSignatureError as error:
            raise LaunchError(
                "issued_in_future",
                _(
                    "The launch was issued in the future (iat): check the clocks of the LMS "
                    "and of this server."
                ),
            ) from error
        except jwt.InvalidAudienceError as error:
            raise LaunchError(
                "wrong_audience",
                _("The launch is not addressed to our client ID %(client_id)s.")
                % {"client_id": self.get_client_id()},
                status=403,
            ) from error
        except jwt.MissingRequiredClaimError as error:
            raise LaunchError(
                "missing_claim",
                _("The launch lacks the %(claim)s claim.") % {"claim": error.claim},
            ) from error
        except jwt.InvalidTokenError as error:
            raise LaunchError(
                "bad_signature",
                _(
                    "The launch's signature does not match the key of issuer %(issuer)s: the "
                    "token was altered or signed by someone else."
                )
                % {"issuer": self.platform.issuer},
                status=403,
            ) from error
        return self

    def validate_deployment(self):
        deployment_id = self.claims().get(DEPLOYMENT_CLAIM)
        if not deployment_id:
            raise LaunchError("missing_deployment", _("The launch names no deployment."))
        if not self.platform.deployments.filter(deployment_id=deployment_id).exists():
            raise LaunchError(
                "unknown_deployment",
                _(
                    "This deployment (%(deployment)s) is not registered for issuer %(issuer)s. "
                    "An administrator can add it to the platform's deployments."
                )
                % {"deployment": deployment_id, "issuer": self.platform.issuer},
                status=403,
            )
        return self


def log_refused(error: LaunchError, claims: dict[str, Any] | None, *, stage: str) -> None:
    logger.warning(
        "LTI %s refused (%s): %s claims=%s",
        stage,
        error.code,
        error.message,
        loggable_claims(claims),
    )
