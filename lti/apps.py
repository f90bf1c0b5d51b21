from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class LtiConfig(AppConfig):
    name = "lti"
    verbose_name = _("LMS integration (LTI 1.3)")

    def ready(self) -> None:
        from lti.grade_passback import grade_passback_connect
        from lti.privacy_rules import privacy_rules_register

        privacy_rules_register()
        grade_passback_connect()
