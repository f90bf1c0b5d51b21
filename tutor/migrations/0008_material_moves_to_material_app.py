"""Material and Chunk are the material app's now (material 0001): state only, the
tables stay as they are."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("tutor", "0007_check_question_to_learning"),
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
