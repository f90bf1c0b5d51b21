from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MaterialConfig(AppConfig):
    name = "material"
    label = "material"
    verbose_name = _("Course material")

    def ready(self) -> None:
        from material.privacy_rules import privacy_rules_register

        privacy_rules_register()

        # Not at the top: config.jobs defines a model, which needs the app registry.
        from config.jobs import sweep_register

        sweep_register("materials", _materials_recover)


def _materials_recover() -> dict[str, int]:
    # Imported when the sweep runs, not when Django starts.
    from material.services import materials_recover

    return {"materials": materials_recover()}
