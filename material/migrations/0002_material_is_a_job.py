"""Material becomes a config.jobs.Job: the reason it failed takes the job machine's name
(``failure_reason`` → ``error``, a rename of the column of ``tutor_material``: rows keep
their values, and the column keeps its type). A material queued or processing without a
lease (from before leases existed) gets one that has lapsed, so the recovery sweep finds
it at once; this replaces the rule that took such a material over once its claim was
older than the task time limit."""

from django.db import migrations
from django.utils import timezone


def unfinished_materials_without_a_lease_lapse_now(apps, schema_editor):
    Material = apps.get_model("material", "Material")
    Material.objects.filter(status__in=["queued", "processing"], lease_until__isnull=True).update(
        lease_until=timezone.now()
    )


class Migration(migrations.Migration):
    dependencies = [
        ("material", "0001_material_from_tutor"),
    ]

    operations = [
        migrations.RenameField(model_name="material", old_name="failure_reason", new_name="error"),
        migrations.RunPython(
            unfinished_materials_without_a_lease_lapse_now, migrations.RunPython.noop
        ),
    ]
