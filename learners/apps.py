from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class LearnersConfig(AppConfig):
    name = "learners"
    verbose_name = _("Learners and courses")

    def ready(self) -> None:
        from learners.privacy_rules import privacy_rules_register

        privacy_rules_register()

        # Not at the top: config.jobs defines a model, which needs the app registry.
        from config.jobs import sweep_register

        sweep_register("question_generations", _generations_recover)


def _generations_recover() -> dict[str, int]:
    from learners.practice_jobs import generations_recover

    return {"question_generations": generations_recover()}
