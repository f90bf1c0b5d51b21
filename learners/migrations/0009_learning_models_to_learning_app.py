"""The learning models moved to the ``learning`` app (its 0001 holds their state now, on
the same tables): they leave ``learners``' state here, and nothing in the database."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("learners", "0008_question_generation_job"),
        ("learning", "0001_models_from_learners"),
        # Every foreign key into the moved models points at the learning app first.
        ("tutor", "0007_check_question_to_learning"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.DeleteModel(name="ReviewCard"),
                migrations.DeleteModel(name="PracticeAttempt"),
                migrations.DeleteModel(name="QuestionGeneration"),
                migrations.DeleteModel(name="PracticeQuestion"),
                migrations.DeleteModel(name="ConceptMastery"),
                migrations.DeleteModel(name="LearnerCourseState"),
                migrations.DeleteModel(name="CourseMasteryModel"),
                migrations.DeleteModel(name="MasteryEvidence"),
            ],
        ),
    ]
