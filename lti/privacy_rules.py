"""The personal data the LTI app holds, registered with the privacy registry from
``LtiConfig.ready()``."""

from __future__ import annotations

from config.privacy_registry import DELETE, PrivacyRule, privacy_register

RULES = {
    # LTI identifiers are personal data: exported with the account, erased with it (the
    # identity rows cascade from the user).
    "lti.ltiidentity": PrivacyRule(
        "account", "user", ("platform__issuer", "sub", "created_at"), DELETE
    ),
}


def privacy_rules_register() -> None:
    privacy_register(RULES)
