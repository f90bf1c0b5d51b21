from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class LtiConfig(AppConfig):
    name = "lti"
    verbose_name = _("LMS integration (LTI 1.3)")

    def ready(self) -> None:
        from config.jobs import sweep_register
        from grading.models import Review
        from grading.signals import grade_released
        from learners.privacy import DELETE, REGISTRY, PrivacyRule

        # LTI identifiers are personal data: exported with the account, erased with it
        # (the identity rows cascade from the user).
        REGISTRY.setdefault(
            "lti.ltiidentity",
            PrivacyRule("account", "user", ("platform__issuer", "sub", "created_at"), DELETE),
        )
        grade_released.connect(_grade_released, sender=Review, dispatch_uid="lti-grade-released")
        sweep_register("lti_score_posts", _score_posts_recover)


def _grade_released(sender, review, **kwargs) -> None:
    from lti.ags import score_posts_queue

    score_posts_queue(review=review)


def _score_posts_recover() -> dict[str, int]:
    from lti.ags import score_posts_recover

    return {"lti_score_posts": score_posts_recover()}
