from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class GradingConfig(AppConfig):
    name = "grading"
    verbose_name = _("Essay grading")

    def ready(self) -> None:
        from grading.privacy_rules import privacy_rules_register

        privacy_rules_register()

        # Not at the top: config.jobs defines a model, which needs the app registry.
        from config.jobs import sweep_register

        sweep_register("proposals", _proposals_recover)


def _proposals_recover() -> dict[str, int]:
    # Imported when the sweep runs: grading's services are heavy to import.
    from grading.proposals import proposals_recover

    return {"proposals": proposals_recover()}
