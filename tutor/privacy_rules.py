"""The personal data the tutor holds, registered with the privacy registry from
``TutorConfig.ready()``."""

from __future__ import annotations

from config.privacy_registry import ALL_FIELDS, DELETE, PrivacyRule, privacy_register

RULES = {
    "tutor.conversation": PrivacyRule(
        "tutor", "learner", ("id", "course__title", "title", "created"), DELETE
    ),
    "tutor.message": PrivacyRule("tutor", "conversation__learner", ALL_FIELDS, DELETE),
    "tutor.feedback": PrivacyRule(
        "tutor", "message__conversation__learner", ("message_id", "rating", "comment"), DELETE
    ),
    "tutor.memory": PrivacyRule(
        "tutor", "learner", ("course__title", "summary", "created"), DELETE
    ),
    # The job that writes a conversation's memory: its state, not its text.
    "tutor.memorysummary": PrivacyRule(
        "tutor",
        "conversation__learner",
        ("conversation_id", "status", "created_at", "finished_at"),
        DELETE,
    ),
}


def privacy_rules_register() -> None:
    privacy_register(RULES)
