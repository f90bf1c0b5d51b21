"""A tutor reply's check question and attempt now point at the learning app's models:
the same tables, so only the state changes."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("learning", "0001_models_from_learners"),
        ("tutor", "0006_message_is_a_job"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.AlterField(
                    model_name="message",
                    name="check_attempt",
                    field=models.OneToOneField(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="tutor_reply",
                        to="learning.practiceattempt",
                    ),
                ),
                migrations.AlterField(
                    model_name="message",
                    name="check_question",
                    field=models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="learning.practicequestion",
                    ),
                ),
            ],
        ),
    ]
