from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class LearnersConfig(AppConfig):
    name = "learners"
    verbose_name = _("Learners and courses")

    def ready(self) -> None:
        from learners.privacy_rules import privacy_rules_register

        privacy_rules_register()
