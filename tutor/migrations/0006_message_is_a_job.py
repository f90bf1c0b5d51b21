"""Message becomes a config.jobs.Job: the claim's time takes the job machine's name
(``started`` → ``claimed_at``, a rename: rows keep their values) and replies count their
claims (``attempts``). A reply being written as this runs has had its one claim, so a
redelivered task cannot take it over from its worker."""

from django.db import migrations, models


def replies_being_written_were_claimed(apps, schema_editor):
    Message = apps.get_model("tutor", "Message")
    Message.objects.filter(status="streaming").update(attempts=1)


class Migration(migrations.Migration):
    dependencies = [
        ("tutor", "0005_material_steps_and_retryable_failures"),
    ]

    operations = [
        migrations.RenameField(model_name="message", old_name="started", new_name="claimed_at"),
        migrations.AddField(
            model_name="message",
            name="attempts",
            field=models.PositiveSmallIntegerField(default=0),
        ),
        migrations.RunPython(replies_being_written_were_claimed, migrations.RunPython.noop),
    ]
