from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TutorConfig(AppConfig):
    name = "tutor"
    verbose_name = _("Tutor and course material")

    def ready(self) -> None:
        from tutor.privacy_rules import privacy_rules_register

        privacy_rules_register()
