"""The personal data grading holds, registered with the privacy registry from
``GradingConfig.ready()``. Released grades are the school's records: erasure anonymises
them (``privacy/personal_data.py``)."""

from __future__ import annotations

from config.privacy_registry import ANONYMISE, DELETE, DETACH, PrivacyRule, privacy_register

RULES = {
    "grading.submission": PrivacyRule(
        "grading",
        "learner",
        ("id", "assignment__title", "text", "is_current", "submitted_at"),
        ANONYMISE,
    ),
    "grading.review": PrivacyRule(
        "grading", "submission__learner", ("submission_id", "status", "released"), ANONYMISE
    ),
    "grading.criterionscore": PrivacyRule("staff", "scored_by", ("submission_id",), DETACH),
    "grading.proposal": PrivacyRule("grading", "submission__learner", (), DELETE),
    # The scorer's reading of the essay: derived from the text, so it goes with it.
    "grading.submissionvector": PrivacyRule("grading", "submission__learner", (), DELETE),
    "grading.regraderequest": PrivacyRule(
        "grading", "submission__learner", ("submission_id", "comment", "created_at"), DELETE
    ),
}


def privacy_rules_register() -> None:
    privacy_register(RULES)
