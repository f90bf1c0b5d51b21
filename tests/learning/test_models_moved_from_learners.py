"""The learning models moved from ``learners`` to ``learning`` without their rows moving: a
database at the migrations before the move keeps every row, and the content types (with
their permissions) follow the models to the new label."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [
    ("learners", "0008_question_generation_job"),
    ("tutor", "0006_message_is_a_job"),
    ("learning", None),
]
AFTER = [
    ("learners", "0009_learning_models_to_learning_app"),
    ("tutor", "0007_check_question_to_learning"),
    ("learning", "0001_models_from_learners"),
]
MOVED = ("practicequestion", "practiceattempt", "reviewcard", "conceptmastery")


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    nodes = [target for target in targets if target[1] is not None]
    return MigrationExecutor(connection).loader.project_state(nodes).apps


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("latest_schema_afterwards")
def test_rows_content_types_and_permissions_survive_the_move():
    from django.contrib.auth.models import Permission
    from django.contrib.contenttypes.models import ContentType
    from django.utils import timezone

    old = _migrate(BEFORE)
    try:
        content_type = old.get_model("contenttypes", "ContentType")
        assert not content_type.objects.filter(app_label="learning").exists()
        old_ids = dict(
            content_type.objects.filter(app_label="learners", model__in=MOVED).values_list(
                "model", "pk"
            )
        )
        assert set(old_ids) == set(MOVED)
        user = old.get_model("learners", "User").objects.create(username="moved")
        course = old.get_model("learners", "Course").objects.create(title="Moved", slug="moved")
        concept = old.get_model("learners", "Concept").objects.create(course=course, name="Cells")
        question = old.get_model("learners", "PracticeQuestion").objects.create(
            concept=concept,
            kind="cloze",
            prompt="A _____ is small.",
            answers=["cell"],
            origin="teacher",
            status="approved",
        )
        attempt = old.get_model("learners", "PracticeAttempt").objects.create(
            learner=user, question=question, answer="cell", correct=True
        )
        old.get_model("learners", "ReviewCard").objects.create(
            learner=user, question=question, card={}, due=timezone.now()
        )
        old.get_model("learners", "ConceptMastery").objects.create(
            learner=user, concept=concept, probability=0.4, enough_data=True
        )
    finally:
        _migrate(AFTER)

    from learning.models import ConceptMastery, PracticeAttempt, PracticeQuestion, ReviewCard
    from tutor.models import Message

    moved = PracticeQuestion.objects.get(pk=question.pk)
    assert moved.prompt == "A _____ is small." and moved.answers == ["cell"]
    assert PracticeAttempt.objects.get(pk=attempt.pk).question_id == question.pk
    assert ReviewCard.objects.filter(question=moved).count() == 1
    assert ConceptMastery.objects.get(concept_id=concept.pk).probability == 0.4
    assert Message._meta.get_field("check_question").related_model is PracticeQuestion
    for model, pk in old_ids.items():
        moved_type = ContentType.objects.get(pk=pk)
        assert (moved_type.app_label, moved_type.model) == ("learning", model)
        assert Permission.objects.filter(content_type=moved_type).exists()
    assert not ContentType.objects.filter(app_label="learners", model__in=MOVED).exists()
