"""QuestionGeneration becomes a config.jobs.Job: the claim's time takes the job machine's
name (``started_at`` → ``claimed_at``, a rename of the column of
``learners_questiongeneration``: rows keep their values). An unfinished job without a
lease gets one that has lapsed, so the recovery sweep finds it at once."""

from django.db import migrations
from django.utils import timezone


def unfinished_jobs_without_a_lease_lapse_now(apps, schema_editor):
    QuestionGeneration = apps.get_model("learning", "QuestionGeneration")
    QuestionGeneration.objects.filter(
        status__in=["queued", "running"], lease_until__isnull=True
    ).update(lease_until=timezone.now())


class Migration(migrations.Migration):
    dependencies = [
        ("learning", "0001_models_from_learners"),
    ]

    operations = [
        migrations.RenameField(
            model_name="questiongeneration", old_name="started_at", new_name="claimed_at"
        ),
        migrations.RunPython(unfinished_jobs_without_a_lease_lapse_now, migrations.RunPython.noop),
    ]
