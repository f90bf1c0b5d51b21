"""The learning side of the learner model: the response log and the mastery model's fits,
practice questions (and the jobs that write them), attempts and spaced-review cards.

The tables keep the names they had in ``learners`` (``Meta.db_table``): the models moved
apps without their rows moving.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from config.jobs import Job
from learners.models import Concept, Course


class MasteryEvidence(models.Model):
    """One observed answer on a concept: the response log the mastery model learns from."""

    class Source(models.TextChoices):
        PRACTICE = "practice", _("Practice")
        REVIEW = "review", _("Spaced review")
        TUTOR = "tutor", _("Tutor check question")
        GRADING = "grading", _("Graded criterion")

    learner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="mastery_evidence"
    )
    concept = models.ForeignKey(Concept, on_delete=models.CASCADE, related_name="evidence")
    correct = models.BooleanField()
    source = models.CharField(max_length=20, choices=Source.choices)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        db_table = "learners_masteryevidence"
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["learner", "created_at"])]
        verbose_name = _("mastery evidence")
        verbose_name_plural = _("mastery evidence")

    def __str__(self) -> str:
        return f"{self.learner} {self.concept} {'✓' if self.correct else '✗'} ({self.source})"


class CourseMasteryModel(models.Model):
    """The mastery model's parameters fitted on one course's response log (JSON)."""

    course = models.OneToOneField(Course, on_delete=models.CASCADE, related_name="mastery_model")
    params = models.JSONField()
    responses = models.PositiveIntegerField(default=0)
    fitted_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "learners_coursemasterymodel"

    def __str__(self) -> str:
        return f"{self.course}: {self.params.get('model')} on {self.responses} responses"


class LearnerCourseState(models.Model):
    """The mastery model's summary of one learner's evidence in one course (JSON)."""

    learner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="mastery_states"
    )
    course = models.ForeignKey(Course, on_delete=models.CASCADE, related_name="+")
    state = models.JSONField(default=dict)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "learners_learnercoursestate"
        constraints = [
            models.UniqueConstraint(fields=["learner", "course"], name="one_state_per_course")
        ]

    def __str__(self) -> str:
        return f"{self.learner} in {self.course}"


class ConceptMastery(models.Model):
    """The current estimate per learner and concept, kept for pages and practice choice."""

    learner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="concept_mastery"
    )
    concept = models.ForeignKey(Concept, on_delete=models.CASCADE, related_name="mastery")
    probability = models.FloatField()
    attempts = models.PositiveIntegerField(default=0)
    enough_data = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "learners_conceptmastery"
        constraints = [
            models.UniqueConstraint(fields=["learner", "concept"], name="one_mastery_per_concept"),
            models.CheckConstraint(
                condition=models.Q(probability__gte=0) & models.Q(probability__lte=1),
                name="mastery_is_a_probability",
            ),
        ]
        verbose_name = _("concept mastery")
        verbose_name_plural = _("concept mastery")

    def __str__(self) -> str:
        return f"{self.learner} {self.concept} {self.probability:.2f}"


class PracticeQuestionQuerySet(models.QuerySet):
    def approved(self) -> PracticeQuestionQuerySet:
        return self.filter(status=PracticeQuestion.Status.APPROVED)


class PracticeQuestion(models.Model):
    # Not a column: why the teacher's edit was refused, shown beside it (question_review).
    review_errors: list[str]

    class Kind(models.TextChoices):
        CLOZE = "cloze", _("Fill in the blank")
        SHORT_ANSWER = "short_answer", _("Short answer")

    class Origin(models.TextChoices):
        MATERIAL = "material", _("Built from the material")
        LLM = "llm", _("Written by the language model")
        TEACHER = "teacher", _("Written by a teacher")

    class Status(models.TextChoices):
        PENDING = "pending", _("Waiting for review")
        APPROVED = "approved", _("Approved")
        REJECTED = "rejected", _("Rejected")

    concept = models.ForeignKey(Concept, on_delete=models.CASCADE, related_name="questions")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    prompt = models.TextField(_("question"), max_length=2000)
    # Cloze: every accepted answer (normalised on comparison). Short answer: key terms,
    # enough of which must appear in the answer.
    answers = models.JSONField(default=list)
    explanation = models.TextField(_("explanation"), blank=True, max_length=4000)
    source_text = models.TextField(blank=True, max_length=4000)
    origin = models.CharField(max_length=20, choices=Origin.choices)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    # Which model and prompt version wrote an LLM question, and its token usage.
    generation = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)

    objects = PracticeQuestionQuerySet.as_manager()

    class Meta:
        db_table = "learners_practicequestion"
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["concept", "prompt"], name="question_prompt_unique")
        ]
        verbose_name = _("practice question")
        verbose_name_plural = _("practice questions")

    def __str__(self) -> str:
        return self.prompt[:80]

    @property
    def answers_text(self) -> str:
        """The accepted answers (or key terms), one a line, as a teacher edits them."""
        return "\n".join(str(answer) for answer in self.answers or [])

    @property
    def names_its_answer(self) -> bool:
        """Whether showing the concept's name beside the question would give its answer
        away: a cloze whose blank is the concept (or part of its name)."""
        if self.kind != self.Kind.CLOZE:
            return False
        name = " ".join(self.concept.name.casefold().split())
        for answer in self.answers or []:
            answer = " ".join(str(answer).casefold().split())
            if answer and (answer in name or name in answer):
                return True
        return False


WORKER_DIED_ERROR = "WorkerLost: the worker writing these questions stopped too many times"


class QuestionGeneration(Job):
    """One request to the language model for practice questions on a concept: a tracked
    job (``config/jobs.py``) like a tutor reply or a grade proposal. The row exists before
    its task is sent (on commit); the task claims it with a conditional update and holds a
    lease while it works, and the recovery sweep queues again one whose worker died or
    whose task was lost. The teacher sees its state on the concepts page, and why it
    failed."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Writing")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    QUEUED, RUNNING, FAILED = Status.QUEUED, Status.RUNNING, Status.FAILED
    FINISHED_FIELD = "finished_at"
    LOST_ERROR = WORKER_DIED_ERROR

    concept = models.ForeignKey(Concept, on_delete=models.CASCADE, related_name="generations")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    # The teacher's pasted text; empty: the concept's material.
    text = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    questions_created = models.PositiveSmallIntegerField(default=0)
    # The call's usage record (ai.llm.LLMUsage.as_dict): the usage page counts it once.
    usage = models.JSONField(default=dict, blank=True)
    # error (config.jobs.Job): "LLMUnsupported: <the server's words>"
    # (ai.llm.llm_error_stored) or a worker's death.
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "learners_questiongeneration"
        ordering = ["-created_at"]
        indexes = [
            models.Index(
                fields=["lease_until"],
                name="generation_unfinished_lease",
                condition=models.Q(status__in=["queued", "running"]),
            )
        ]

    def __str__(self) -> str:
        return f"questions for {self.concept_id} ({self.status})"

    @property
    def failure_reason(self) -> str:
        """Why it failed, translated, for the concepts page."""
        from learning.practice import llm_failure_reason

        if self.status != self.Status.FAILED:
            return ""
        return llm_failure_reason(self.error) or str(_("The questions could not be written."))


class PracticeAttempt(models.Model):
    learner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="practice_attempts"
    )
    question = models.ForeignKey(
        PracticeQuestion, on_delete=models.CASCADE, related_name="attempts"
    )
    answer = models.TextField(max_length=2000)
    correct = models.BooleanField()
    is_review = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        db_table = "learners_practiceattempt"
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.learner} {'✓' if self.correct else '✗'} {self.question}"


class ReviewCardQuerySet(models.QuerySet):
    def due(self, *, now) -> ReviewCardQuerySet:
        return self.filter(due__lte=now)


class ReviewCard(models.Model):
    """A practised question's spaced-review schedule (an ``fsrs`` card, as JSON)."""

    learner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="review_cards"
    )
    question = models.ForeignKey(
        PracticeQuestion, on_delete=models.CASCADE, related_name="review_cards"
    )
    card = models.JSONField()
    due = models.DateTimeField(db_index=True)
    last_review = models.DateTimeField(null=True, blank=True)
    reviews = models.PositiveIntegerField(default=0)

    objects = ReviewCardQuerySet.as_manager()

    class Meta:
        db_table = "learners_reviewcard"
        ordering = ["due", "id"]
        constraints = [
            models.UniqueConstraint(fields=["learner", "question"], name="one_card_per_question")
        ]

    def __str__(self) -> str:
        return f"{self.learner} {self.question} due {self.due:%Y-%m-%d}"
