"""Material and Chunk are the material app's now (material 0001): state only, the
tables stay as they are."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("tutor", "0005_material_steps_and_retryable_failures"),
        ("material", "0001_material_from_tutor"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveField(
                    model_name="material",
                    name="course",
                ),
                migrations.RemoveField(
                    model_name="material",
                    name="uploaded_by",
                ),
                migrations.DeleteModel(
                    name="Chunk",
                ),
                migrations.DeleteModel(
                    name="Material",
                ),
            ],
        ),
    ]
