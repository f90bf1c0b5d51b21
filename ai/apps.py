from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AIConfig(AppConfig):
    name = "ai"
    label = "ai"
    verbose_name = _("Language model use and cost")

    def ready(self) -> None:
        from ai.privacy_rules import privacy_rules_register

        privacy_rules_register()
