"""The personal data the learners app holds (and Django's admin log of staff actions),
registered with the privacy registry from ``LearnersConfig.ready()``."""

from __future__ import annotations

from config.privacy_registry import DELETE, DETACH, PrivacyRule, privacy_register

_USER_FIELDS = (
    "username",
    "first_name",
    "last_name",
    "email",
    "display_name",
    "preferred_language",
    "birth_date",
    "date_joined",
    "last_login",
)

RULES = {
    "learners.user": PrivacyRule("account", "", _USER_FIELDS, DELETE),
    "learners.membership": PrivacyRule("account", "user", ("course__title", "role"), DELETE),
    "learners.aiconsent": PrivacyRule(
        "account", "user", ("granted", "given_by", "version", "recorded_at"), DELETE
    ),
    "learners.invitation": PrivacyRule(
        "staff", "created_by", ("course__title", "role", "created_at"), DETACH
    ),
    "learners.notice": PrivacyRule(
        "account", "user", ("course__title", "kind", "title", "created_at", "read_at"), DELETE
    ),
    # Django's admin log names the staff member who acted.
    "admin.logentry": PrivacyRule(
        "staff", "user", ("action_time", "object_repr", "change_message"), DELETE
    ),
}


def privacy_rules_register() -> None:
    privacy_register(RULES)
