"""The personal data of the learner model (evidence, mastery, practice, reviews, the
learner's profile) and of the questions teachers reviewed or asked for, registered with
the privacy registry from ``LearningConfig.ready()``. The learner's own rows are exported
together, as the learning export (``learning.progress.learning_export``)."""

from __future__ import annotations

from config.privacy_registry import DELETE, DETACH, PrivacyRule, privacy_register
from learners.models import User


def _learning(user: User) -> dict:
    # Imported on export: the learner model's code is not needed to start a process.
    from learning.progress import learning_export

    return learning_export(user=user)


RULES = {
    "learners.learnerprofile": PrivacyRule("learning", "user", _learning, DELETE),
    "learning.masteryevidence": PrivacyRule("learning", "learner", _learning, DELETE),
    "learning.learnercoursestate": PrivacyRule("learning", "learner", _learning, DELETE),
    "learning.conceptmastery": PrivacyRule("learning", "learner", _learning, DELETE),
    "learning.practiceattempt": PrivacyRule("learning", "learner", _learning, DELETE),
    "learning.reviewcard": PrivacyRule("learning", "learner", _learning, DELETE),
    "learning.practicequestion": PrivacyRule("staff", "reviewed_by", ("prompt",), DETACH),
    # The teacher who asked for questions to be written; the job stays, detached.
    "learning.questiongeneration": PrivacyRule(
        "staff", "requested_by", ("concept__name", "status", "created_at"), DETACH
    ),
}


def privacy_rules_register() -> None:
    privacy_register(RULES)
