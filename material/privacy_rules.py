"""The personal data course material holds (who uploaded it), registered with the privacy
registry from ``MaterialConfig.ready()``."""

from __future__ import annotations

from config.privacy_registry import DETACH, PrivacyRule, privacy_register

RULES = {
    # The file is the course's; the teacher who uploaded it is detached on erasure.
    "material.material": PrivacyRule(
        "staff", "uploaded_by", ("course__title", "title", "original_name", "created"), DETACH
    ),
}


def privacy_rules_register() -> None:
    privacy_register(RULES)
