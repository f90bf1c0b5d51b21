"""The tool's signing keys: made once (by jwcrypto), kept in the database, rotatable,
published as a JWKS."""

from __future__ import annotations

import json
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from jwcrypto.jwk import JWK

from lti.models import ToolKey


def _new_key() -> ToolKey:
    jwk = JWK.generate(kty="RSA", size=2048)
    return ToolKey.objects.create(
        # The RFC 7638 thumbprint: the key id pylti1p3 puts in the headers it signs.
        kid=jwk.thumbprint(),
        public_pem=jwk.export_to_pem().decode(),
        private_pem=jwk.export_to_pem(private_key=True, password=None).decode(),
    )


def current_key() -> ToolKey:
    """The key that signs now; the first one is made on first use."""
    key = ToolKey.objects.filter(retired_at__isnull=True).first()
    if key is not None:
        return key
    with transaction.atomic():
        # One maker at a time, so two first launches do not make two keys.
        ToolKey.objects.select_for_update().filter(retired_at__isnull=True).exists()
        key = ToolKey.objects.filter(retired_at__isnull=True).first()
        return key or _new_key()


def rotate_key() -> ToolKey:
    """A new key signs from now on; the old ones stay published for the overlap."""
    with transaction.atomic():
        ToolKey.objects.filter(retired_at__isnull=True).update(retired_at=timezone.now())
        return _new_key()


def published_keys():
    overlap = timezone.now() - timedelta(seconds=settings.LTI_KEY_OVERLAP_SECONDS)
    return ToolKey.objects.filter(Q(retired_at__isnull=True) | Q(retired_at__gt=overlap))


def public_jwk(key: ToolKey) -> dict:
    jwk = json.loads(JWK.from_pem(key.public_pem.encode()).export_public())
    jwk.update({"kid": key.kid, "alg": "RS256", "use": "sig"})
    return jwk


def jwks() -> dict:
    current_key()
    return {"keys": [public_jwk(key) for key in published_keys()]}
