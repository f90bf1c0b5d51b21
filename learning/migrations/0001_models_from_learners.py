"""The learning models move here from ``learners`` (issue 14) without their rows moving:
the state is created here (each model's ``db_table`` keeps its ``learners_`` name) and
deleted from ``learners`` in its 0009, and nothing touches the database but the content
types, which follow the models to the ``learning`` label (their permissions with them)."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

MODELS = (
    "masteryevidence",
    "coursemasterymodel",
    "learnercoursestate",
    "conceptmastery",
    "practicequestion",
    "questiongeneration",
    "practiceattempt",
    "reviewcard",
)


def _content_types_move(apps, schema_editor, *, old, new):
    """The moved models' content types (and so their permissions) change label; where the
    new label already has a row (made by a run of migrate at a later label), it is kept."""
    content_type = apps.get_model("contenttypes", "ContentType")
    db = schema_editor.connection.alias
    for model in MODELS:
        if content_type.objects.using(db).filter(app_label=new, model=model).exists():
            continue
        content_type.objects.using(db).filter(app_label=old, model=model).update(app_label=new)


def content_types_to_learning(apps, schema_editor):
    _content_types_move(apps, schema_editor, old="learners", new="learning")


def content_types_to_learners(apps, schema_editor):
    _content_types_move(apps, schema_editor, old="learning", new="learners")


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("learners", "0008_question_generation_job"),
        ("contenttypes", "0002_remove_content_type_name"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.CreateModel(
                    name="CourseMasteryModel",
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
                        ("params", models.JSONField()),
                        ("responses", models.PositiveIntegerField(default=0)),
                        ("fitted_at", models.DateTimeField(auto_now=True)),
                        (
                            "course",
                            models.OneToOneField(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="mastery_model",
                                to="learners.course",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "learners_coursemasterymodel",
                    },
                ),
                migrations.CreateModel(
                    name="PracticeQuestion",
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
                            "kind",
                            models.CharField(
                                choices=[
                                    ("cloze", "Fill in the blank"),
                                    ("short_answer", "Short answer"),
                                ],
                                max_length=20,
                            ),
                        ),
                        ("prompt", models.TextField(max_length=2000, verbose_name="question")),
                        ("answers", models.JSONField(default=list)),
                        (
                            "explanation",
                            models.TextField(
                                blank=True, max_length=4000, verbose_name="explanation"
                            ),
                        ),
                        ("source_text", models.TextField(blank=True, max_length=4000)),
                        (
                            "origin",
                            models.CharField(
                                choices=[
                                    ("material", "Built from the material"),
                                    ("llm", "Written by the language model"),
                                    ("teacher", "Written by a teacher"),
                                ],
                                max_length=20,
                            ),
                        ),
                        (
                            "status",
                            models.CharField(
                                choices=[
                                    ("pending", "Waiting for review"),
                                    ("approved", "Approved"),
                                    ("rejected", "Rejected"),
                                ],
                                default="pending",
                                max_length=20,
                            ),
                        ),
                        ("generation", models.JSONField(blank=True, default=dict)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("reviewed_at", models.DateTimeField(blank=True, null=True)),
                        (
                            "concept",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="questions",
                                to="learners.concept",
                            ),
                        ),
                        (
                            "reviewed_by",
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
                        "verbose_name": "practice question",
                        "verbose_name_plural": "practice questions",
                        "db_table": "learners_practicequestion",
                        "ordering": ["created_at", "id"],
                    },
                ),
                migrations.CreateModel(
                    name="PracticeAttempt",
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
                        ("answer", models.TextField(max_length=2000)),
                        ("correct", models.BooleanField()),
                        ("is_review", models.BooleanField(default=False)),
                        ("created_at", models.DateTimeField(auto_now_add=True, db_index=True)),
                        (
                            "learner",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="practice_attempts",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                        (
                            "question",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="attempts",
                                to="learning.practicequestion",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "learners_practiceattempt",
                        "ordering": ["-created_at", "-id"],
                    },
                ),
                migrations.CreateModel(
                    name="QuestionGeneration",
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
                        ("text", models.TextField(blank=True)),
                        (
                            "status",
                            models.CharField(
                                choices=[
                                    ("queued", "Queued"),
                                    ("running", "Writing"),
                                    ("done", "Done"),
                                    ("failed", "Failed"),
                                ],
                                default="queued",
                                max_length=10,
                            ),
                        ),
                        ("questions_created", models.PositiveSmallIntegerField(default=0)),
                        ("usage", models.JSONField(blank=True, default=dict)),
                        ("error", models.TextField(blank=True)),
                        ("attempts", models.PositiveSmallIntegerField(default=0)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("started_at", models.DateTimeField(blank=True, null=True)),
                        ("finished_at", models.DateTimeField(blank=True, null=True)),
                        ("lease_until", models.DateTimeField(blank=True, null=True)),
                        (
                            "concept",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="generations",
                                to="learners.concept",
                            ),
                        ),
                        (
                            "requested_by",
                            models.ForeignKey(
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={
                        "db_table": "learners_questiongeneration",
                        "ordering": ["-created_at"],
                    },
                ),
                migrations.CreateModel(
                    name="ReviewCard",
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
                        ("card", models.JSONField()),
                        ("due", models.DateTimeField(db_index=True)),
                        ("last_review", models.DateTimeField(blank=True, null=True)),
                        ("reviews", models.PositiveIntegerField(default=0)),
                        (
                            "learner",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="review_cards",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                        (
                            "question",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="review_cards",
                                to="learning.practicequestion",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "learners_reviewcard",
                        "ordering": ["due", "id"],
                    },
                ),
                migrations.CreateModel(
                    name="ConceptMastery",
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
                        ("probability", models.FloatField()),
                        ("attempts", models.PositiveIntegerField(default=0)),
                        ("enough_data", models.BooleanField(default=False)),
                        ("updated_at", models.DateTimeField(auto_now=True)),
                        (
                            "concept",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="mastery",
                                to="learners.concept",
                            ),
                        ),
                        (
                            "learner",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="concept_mastery",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={
                        "verbose_name": "concept mastery",
                        "verbose_name_plural": "concept mastery",
                        "db_table": "learners_conceptmastery",
                        "constraints": [
                            models.UniqueConstraint(
                                fields=("learner", "concept"), name="one_mastery_per_concept"
                            ),
                            models.CheckConstraint(
                                condition=models.Q(
                                    ("probability__gte", 0), ("probability__lte", 1)
                                ),
                                name="mastery_is_a_probability",
                            ),
                        ],
                    },
                ),
                migrations.CreateModel(
                    name="LearnerCourseState",
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
                        ("state", models.JSONField(default=dict)),
                        ("updated_at", models.DateTimeField(auto_now=True)),
                        (
                            "course",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="+",
                                to="learners.course",
                            ),
                        ),
                        (
                            "learner",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="mastery_states",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={
                        "db_table": "learners_learnercoursestate",
                        "constraints": [
                            models.UniqueConstraint(
                                fields=("learner", "course"), name="one_state_per_course"
                            )
                        ],
                    },
                ),
                migrations.CreateModel(
                    name="MasteryEvidence",
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
                        ("correct", models.BooleanField()),
                        (
                            "source",
                            models.CharField(
                                choices=[
                                    ("practice", "Practice"),
                                    ("review", "Spaced review"),
                                    ("tutor", "Tutor check question"),
                                    ("grading", "Graded criterion"),
                                ],
                                max_length=20,
                            ),
                        ),
                        ("created_at", models.DateTimeField(auto_now_add=True, db_index=True)),
                        (
                            "concept",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="evidence",
                                to="learners.concept",
                            ),
                        ),
                        (
                            "learner",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="mastery_evidence",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={
                        "verbose_name": "mastery evidence",
                        "verbose_name_plural": "mastery evidence",
                        "db_table": "learners_masteryevidence",
                        "ordering": ["created_at", "id"],
                        "indexes": [
                            models.Index(
                                fields=["learner", "created_at"],
                                name="learners_ma_learner_49f730_idx",
                            )
                        ],
                    },
                ),
                migrations.AddConstraint(
                    model_name="practicequestion",
                    constraint=models.UniqueConstraint(
                        fields=("concept", "prompt"), name="question_prompt_unique"
                    ),
                ),
                migrations.AddIndex(
                    model_name="questiongeneration",
                    index=models.Index(
                        condition=models.Q(("status__in", ["queued", "running"])),
                        fields=["lease_until"],
                        name="generation_unfinished_lease",
                    ),
                ),
                migrations.AddConstraint(
                    model_name="reviewcard",
                    constraint=models.UniqueConstraint(
                        fields=("learner", "question"), name="one_card_per_question"
                    ),
                ),
            ],
        ),
        migrations.RunPython(content_types_to_learning, content_types_to_learners),
    ]
