"""Storing a platform registration: one place for ``manage.py lti_platform_add`` and for
LTI Dynamic Registration (``lti/dynamic_registration.py``)."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction

from lti.embedding import forget_frame_origins
from lti.keys import current_key
from lti.models import LtiDeployment, LtiPlatform


def platform_save(
    *,
    issuer: str,
    client_id: str,
    deployment_ids: Iterable[str],
    auth_login_url: str,
    auth_token_url: str,
    keyset_url: str,
    auth_audience: str = "",
    name: str = "",
    frame_origins: Iterable[str] = (),
) -> tuple[LtiPlatform, bool]:
    """Register a platform (or update the one with the same issuer and client id) with its
    deployment ids, all or nothing; make sure the tool has a signing key to publish.
    Returns the platform and whether it is new."""
    with transaction.atomic():
        platform, created = LtiPlatform.objects.update_or_create(
            issuer=issuer.strip(),
            client_id=client_id.strip(),
            defaults={
                "name": name,
                "auth_login_url": auth_login_url,
                "auth_token_url": auth_token_url,
                "auth_audience": auth_audience,
                "keyset_url": keyset_url,
                "frame_origins": " ".join(frame_origins),
                "is_active": True,
            },
        )
        for deployment_id in deployment_ids:
            if deployment_id.strip():
                LtiDeployment.objects.get_or_create(
                    platform=platform, deployment_id=deployment_id.strip()
                )
        current_key()
    forget_frame_origins()
    return platform, created
