"""pylti1p3's view of our registrations: platforms and deployments from the database,
signed with the tool's current key."""

from __future__ import annotations

from pylti1p3.deployment import Deployment
from pylti1p3.registration import Registration
from pylti1p3.tool_config import ToolConfAbstract

from lti.keys import current_key
from lti.models import LtiDeployment, LtiPlatform


def platform_registration(platform: LtiPlatform) -> Registration:
    """The pylti1p3 registration of one platform, holding the key we sign with now."""
    key = current_key()
    registration = (
        Registration()
        .set_issuer(platform.issuer)
        .set_client_id(platform.client_id)
        .set_auth_login_url(platform.auth_login_url)
        .set_auth_token_url(platform.auth_token_url)
        .set_key_set_url(platform.keyset_url)
        .set_tool_private_key(key.private_pem)
        .set_tool_public_key(key.public_pem)
    )
    if platform.auth_audience:
        registration.set_auth_audience(platform.auth_audience)
    return registration


def find_platform(issuer: str, client_id: str | None) -> LtiPlatform | None:
    """The active platform for an issuer and client id; with no client id (it is optional
    at login), the issuer's only platform."""
    platforms = LtiPlatform.objects.active().filter(issuer=issuer)
    if client_id:
        return platforms.filter(client_id=client_id).first()
    found = list(platforms[:2])
    return found[0] if len(found) == 1 else None


class DatabaseToolConf(ToolConfAbstract):
    """Every issuer may hold several client ids (pylti1p3's recommended mode)."""

    def check_iss_has_one_client(self, iss: str) -> bool:
        return False

    def check_iss_has_many_clients(self, iss: str) -> bool:
        return True

    def find_registration_by_issuer(self, iss, *args, **kwargs):
        platform = find_platform(iss, None)
        return platform_registration(platform) if platform else None

    def find_registration_by_params(self, iss, client_id, *args, **kwargs):
        platform = find_platform(iss, client_id)
        return platform_registration(platform) if platform else None

    def find_deployment(self, iss, deployment_id):
        return self.find_deployment_by_params(iss, deployment_id, None)

    def find_deployment_by_params(self, iss, deployment_id, client_id, *args, **kwargs):
        platform = find_platform(iss, client_id)
        if platform is None:
            return None
        if LtiDeployment.objects.filter(platform=platform, deployment_id=deployment_id).exists():
            return Deployment().set_deployment_id(deployment_id)
        return None
