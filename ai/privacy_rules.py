"""The personal data the ai app holds, registered with the privacy registry from
``AIConfig.ready()``."""

from __future__ import annotations

from config.privacy_registry import DELETE, PrivacyRule, privacy_register

RULES = {
    # The ledger of language model calls made for the person: no content, but when and
    # for what they used AI, so it goes with them (the course's usage page loses them).
    "ai.llmcall": PrivacyRule(
        "ai",
        "user",
        (
            "created_at",
            "course__title",
            "purpose",
            "model",
            "prompt_version",
            "prompt_tokens",
            "completion_tokens",
            "tokens_source",
            "outcome",
        ),
        DELETE,
    ),
}


def privacy_rules_register() -> None:
    privacy_register(RULES)
