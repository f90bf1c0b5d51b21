from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class GradingConfig(AppConfig):
    name = "grading"
    verbose_name = _("Essay grading")

    def ready(self) -> None:
        from grading.privacy_rules import privacy_rules_register

        privacy_rules_register()
