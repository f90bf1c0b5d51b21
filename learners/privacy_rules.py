"""The personal data the learners app holds (and Django's admin log of staff actions),
registered with the privacy registry from ``LearnersConfig.ready()``."""

from __future__ import annotations

from config.privacy_registry import DELETE, DETACH, PrivacyRule, privacy_register
from learners.models import User
from learners.progress import learning_export


def _learning(user: User) -> dict:
    return learning_export(user=user)


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
    "learners.learnerprofile": PrivacyRule("learning", "user", _learning, DELETE),
    "learners.masteryevidence": PrivacyRule("learning", "learner", _learning, DELETE),
    "learners.learnercoursestate": PrivacyRule("learning", "learner", _learning, DELETE),
    "learners.conceptmastery": PrivacyRule("learning", "learner", _learning, DELETE),
    "learners.practiceattempt": PrivacyRule("learning", "learner", _learning, DELETE),
    "learners.reviewcard": PrivacyRule("learning", "learner", _learning, DELETE),
    "learners.practicequestion": PrivacyRule("staff", "reviewed_by", ("prompt",), DETACH),
    # The teacher who asked for questions to be written; the job stays, detached.
    "learners.questiongeneration": PrivacyRule(
        "staff", "requested_by", ("concept__name", "status", "created_at"), DETACH
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
