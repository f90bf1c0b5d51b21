from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class LtiConfig(AppConfig):
    name = "lti"
    verbose_name = _("LMS integration (LTI 1.3)")

    def ready(self) -> None:
        from config.jobs import sweep_register
        from lti.grade_passback import grade_passback_connect
        from lti.privacy_rules import privacy_rules_register

        privacy_rules_register()
        grade_passback_connect()
        sweep_register("lti_score_posts", _score_posts_recover)


def _score_posts_recover() -> dict[str, int]:
    from lti.ags import score_posts_recover

    return {"lti_score_posts": score_posts_recover()}
