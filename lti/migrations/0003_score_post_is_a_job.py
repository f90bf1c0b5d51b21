"""LtiScorePost becomes a config.jobs.Job: its columns take the job machine's names
(``state`` → ``status``, ``started_at`` → ``claimed_at``). Renames only: every row keeps
its values, and the index follows its column."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("lti", "0002_registration_link"),
    ]

    operations = [
        migrations.RenameField(model_name="ltiscorepost", old_name="state", new_name="status"),
        migrations.RenameField(
            model_name="ltiscorepost", old_name="started_at", new_name="claimed_at"
        ),
        # The index's column was renamed with it; only Django's record names the field.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveIndex(model_name="ltiscorepost", name="lti_scorepost_due"),
                migrations.AddIndex(
                    model_name="ltiscorepost",
                    index=models.Index(fields=["status", "lease_until"], name="lti_scorepost_due"),
                ),
            ]
        ),
    ]
