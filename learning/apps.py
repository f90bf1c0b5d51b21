from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class LearningConfig(AppConfig):
    name = "learning"
    verbose_name = _("Learning: mastery, practice and review")

    def ready(self) -> None:
        from learning.privacy_rules import privacy_rules_register

        privacy_rules_register()

        from learning.course_concepts import course_concepts_signals_connect

        course_concepts_signals_connect()

        # Not at the top: config.jobs defines a model, which needs the app registry.
        from config.jobs import sweep_register

        sweep_register("question_generations", _generations_recover)


def _generations_recover() -> dict[str, int]:
    from learning.practice_jobs import generations_recover

    return {"question_generations": generations_recover()}
