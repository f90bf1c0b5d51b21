"""Material and Chunk moved from the tutor app without touching their rows: a database
at the tutor app's last migration with material in it migrates forward intact."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("tutor", "0007_check_question_to_learning"), ("material", None)]
AFTER = [("tutor", "0008_material_moves_to_material_app"), ("material", "0001_material_from_tutor")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    nodes = [target for target in targets if target[1] is not None]
    return MigrationExecutor(connection).loader.project_state(nodes).apps


@pytest.mark.django_db(transaction=True)
def test_material_rows_content_types_and_permissions_follow_the_move(make_course):
    course = make_course("Migration course")
    try:
        old = migrate(BEFORE)
        ContentType = old.get_model("contenttypes", "ContentType")
        Permission = old.get_model("auth", "Permission")
        kind = ContentType.objects.get_or_create(app_label="tutor", model="material")[0]
        ContentType.objects.filter(app_label="material").delete()
        permission = Permission.objects.get_or_create(
            content_type=kind, codename="change_material", defaults={"name": "Can change"}
        )[0]
        OldMaterial = old.get_model("tutor", "Material")
        OldChunk = old.get_model("tutor", "Chunk")
        kept = OldMaterial.objects.create(
            course_id=course.pk, title="Volcanoes", original_name="v.md", status="ready"
        )
        OldChunk.objects.create(
            material=kept,
            course_id=course.pk,
            position=0,
            text="Magma rises.",
            text_hash="x",
            embedding=[0.0] * 384,
            word_count=2,
        )
        new = migrate(AFTER)
        Material = new.get_model("material", "Material")
        assert Material.objects.get(pk=kept.pk).title == "Volcanoes"
        assert list(Material.objects.get(pk=kept.pk).chunks.values_list("text", flat=True)) == [
            "Magma rises."
        ]
        kind.refresh_from_db()
        assert kind.app_label == "material"
        permission.refresh_from_db()
        assert permission.content_type_id == kind.pk
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
