"""Material and Chunk move from the tutor app to this one: state only.

Their tables keep the names they had (``tutor_material``, ``tutor_chunk`` and
``tutor_chunk_concepts``; ``Meta.db_table`` pins them), so no row is copied. The content
types follow the models to this app's label, and with them their permissions and the
admin log entries that point at them.
"""

import django.contrib.postgres.indexes
import django.contrib.postgres.search
import django.db.models.deletion
import pgvector.django.indexes
import pgvector.django.vector
from django.conf import settings
from django.db import migrations, models

import material.models

MOVED_MODELS = ("material", "chunk")


def content_types_follow(apps, schema_editor, *, old: str, new: str) -> None:
    ContentType = apps.get_model("contenttypes", "ContentType")
    db = schema_editor.connection.alias
    for model in MOVED_MODELS:
        # A database migrated before the content types existed has none to move.
        if not ContentType.objects.using(db).filter(app_label=new, model=model).exists():
            ContentType.objects.using(db).filter(app_label=old, model=model).update(app_label=new)


def content_types_to_material(apps, schema_editor) -> None:
    content_types_follow(apps, schema_editor, old="tutor", new="material")


def content_types_to_tutor(apps, schema_editor) -> None:
    content_types_follow(apps, schema_editor, old="material", new="tutor")


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("tutor", "0005_material_steps_and_retryable_failures"),
        ("learners", "0008_question_generation_job"),
        ("contenttypes", "0002_remove_content_type_name"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Material",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        ("title", models.CharField(max_length=300, verbose_name="title")),
                        (
                            "original_name",
                            models.CharField(max_length=255, verbose_name="file name"),
                        ),
                        (
                            "file",
                            models.FileField(
                                blank=True,
                                max_length=500,
                                upload_to=material.models.material_upload_to,
                                verbose_name="file",
                            ),
                        ),
                        (
                            "size",
                            models.PositiveBigIntegerField(default=0, verbose_name="size in bytes"),
                        ),
                        ("file_hash", models.CharField(blank=True, max_length=64)),
                        ("text_hash", models.CharField(blank=True, max_length=64)),
                        (
                            "kind",
                            models.CharField(blank=True, max_length=20, verbose_name="format"),
                        ),
                        (
                            "status",
                            models.CharField(
                                choices=[
                                    ("queued", "Queued"),
                                    ("processing", "Processing"),
                                    ("ready", "Ready"),
                                    ("failed", "Failed"),
                                ],
                                default="queued",
                                max_length=12,
                                verbose_name="status",
                            ),
                        ),
                        (
                            "progress",
                            models.PositiveSmallIntegerField(
                                default=0, verbose_name="progress (%)"
                            ),
                        ),
                        (
                            "step",
                            models.CharField(
                                blank=True,
                                choices=[
                                    ("reading", "Reading the file"),
                                    ("embedding", "Embedding passages"),
                                    ("saving", "Saving passages"),
                                ],
                                max_length=12,
                                verbose_name="step",
                            ),
                        ),
                        ("passages_done", models.PositiveIntegerField(default=0)),
                        ("passages_total", models.PositiveIntegerField(default=0)),
                        ("failure_retryable", models.BooleanField(default=False)),
                        (
                            "failure_reason",
                            models.CharField(
                                blank=True, max_length=500, verbose_name="reason for failure"
                            ),
                        ),
                        ("created", models.DateTimeField(auto_now_add=True)),
                        ("updated", models.DateTimeField(auto_now=True)),
                        ("claimed_at", models.DateTimeField(blank=True, null=True)),
                        ("lease_until", models.DateTimeField(blank=True, null=True)),
                        ("attempts", models.PositiveSmallIntegerField(default=0)),
                        ("ingested_at", models.DateTimeField(blank=True, null=True)),
                        (
                            "course",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="materials",
                                to="learners.course",
                            ),
                        ),
                        (
                            "uploaded_by",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={
                        "verbose_name": "material",
                        "verbose_name_plural": "materials",
                        "db_table": "tutor_material",
                        "ordering": ["title", "pk"],
                    },
                ),
                migrations.CreateModel(
                    name="Chunk",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        (
                            "position",
                            models.PositiveIntegerField(verbose_name="position in the material"),
                        ),
                        ("text", models.TextField(verbose_name="text")),
                        (
                            "section",
                            models.CharField(blank=True, max_length=1000, verbose_name="section"),
                        ),
                        (
                            "page",
                            models.PositiveIntegerField(blank=True, null=True, verbose_name="page"),
                        ),
                        ("text_hash", models.CharField(max_length=64)),
                        ("embedding", pgvector.django.vector.VectorField(dimensions=384)),
                        (
                            "search_vector",
                            models.GeneratedField(
                                db_persist=True,
                                expression=django.contrib.postgres.search.SearchVector(
                                    "text", config="english"
                                ),
                                output_field=django.contrib.postgres.search.SearchVectorField(),
                            ),
                        ),
                        ("word_count", models.PositiveIntegerField()),
                        (
                            "concepts",
                            models.ManyToManyField(
                                blank=True,
                                related_name="chunks",
                                to="learners.concept",
                                verbose_name="concepts",
                            ),
                        ),
                        (
                            "course",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="+",
                                to="learners.course",
                            ),
                        ),
                        (
                            "material",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="chunks",
                                to="material.material",
                            ),
                        ),
                    ],
                    options={
                        "verbose_name": "chunk",
                        "verbose_name_plural": "chunks",
                        "db_table": "tutor_chunk",
                        "ordering": ["material_id", "position"],
                    },
                ),
                migrations.AddIndex(
                    model_name="material",
                    index=models.Index(
                        fields=["course", "status"], name="tutor_mater_course__0b42fb_idx"
                    ),
                ),
                migrations.AddIndex(
                    model_name="material",
                    index=models.Index(
                        condition=models.Q(("status__in", ["queued", "processing"])),
                        fields=["lease_until"],
                        name="material_unfinished_lease",
                    ),
                ),
                migrations.AddConstraint(
                    model_name="material",
                    constraint=models.CheckConstraint(
                        condition=models.Q(
                            ("status__in", ["queued", "processing", "ready", "failed"])
                        ),
                        name="material_status_known",
                    ),
                ),
                migrations.AddConstraint(
                    model_name="material",
                    constraint=models.CheckConstraint(
                        condition=models.Q(("progress__lte", 100)), name="material_progress_percent"
                    ),
                ),
                migrations.AddIndex(
                    model_name="chunk",
                    index=models.Index(fields=["course"], name="tutor_chunk_course__76c16f_idx"),
                ),
                migrations.AddIndex(
                    model_name="chunk",
                    index=django.contrib.postgres.indexes.GinIndex(
                        fields=["search_vector"], name="chunk_search_vector_gin"
                    ),
                ),
                migrations.AddIndex(
                    model_name="chunk",
                    index=pgvector.django.indexes.HnswIndex(
                        ef_construction=64,
                        fields=["embedding"],
                        m=16,
                        name="chunk_embedding_hnsw",
                        opclasses=["vector_cosine_ops"],
                    ),
                ),
                migrations.AddConstraint(
                    model_name="chunk",
                    constraint=models.UniqueConstraint(
                        fields=("material", "position"), name="chunk_position_unique_in_material"
                    ),
                ),
            ],
        ),
        migrations.RunPython(content_types_to_material, content_types_to_tutor),
    ]
