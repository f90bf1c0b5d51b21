from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TutorConfig(AppConfig):
    name = "tutor"
    verbose_name = _("Tutor")

    def ready(self) -> None:
        from tutor.privacy_rules import privacy_rules_register

        privacy_rules_register()

        # Not at the top: config.jobs defines a model, which needs the app registry.
        from config.jobs import sweep_register

        sweep_register("replies", _replies_recover)
        sweep_register("memory_summaries", _memory_summaries_recover)


# The sweep's parts import their services when they run, not when Django starts.


def _replies_recover() -> dict[str, int]:
    from tutor.conversations import replies_recover

    failed, resent = replies_recover()
    return {"replies_failed": failed, "replies_resent": resent}


def _memory_summaries_recover() -> dict[str, int]:
    from tutor.conversations import memory_summaries_recover

    return {"memory_summaries": memory_summaries_recover()}
