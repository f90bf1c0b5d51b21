"""Assignments with rubrics, learners' submissions, and the teacher's scores per criterion.

Scores are decimals on each criterion's own scale (``min_score`` to ``max_score`` in
steps of ``step``). The database enforces what one row can check; a score's fit to its
criterion's scale spans two tables, so :meth:`CriterionScore.clean` and the services check
it, and :func:`grading.scoring` only ever proposes scores on the scale.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ai.llm import failure_reason as llm_failure_reason
from config.jobs import Job, JobQuerySet
from grading.criteria import Criterion

if TYPE_CHECKING:
    from grading.selectors import Version
    from learners.models import User


class Assignment(models.Model):
    class ResubmissionPolicy(models.TextChoices):
        NONE = "none", _("No resubmission")
        UNTIL_DUE = "until_due", _("Resubmit until the due date")
        ANY_TIME = "any_time", _("Resubmit any time")

    course = models.ForeignKey(
        "learners.Course", on_delete=models.CASCADE, related_name="assignments"
    )
    title = models.CharField(_("title"), max_length=200)
    prompt = models.TextField(_("prompt"), blank=True)
    due_at = models.DateTimeField(_("due"), null=True, blank=True)
    resubmission_policy = models.CharField(
        _("resubmission"),
        max_length=16,
        choices=ResubmissionPolicy.choices,
        default=ResubmissionPolicy.UNTIL_DUE,
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["course", "due_at", "title"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(resubmission_policy__in=["none", "until_due", "any_time"]),
                name="assignment_resubmission_policy_known",
            ),
        ]
        verbose_name = _("assignment")
        verbose_name_plural = _("assignments")

    def __str__(self) -> str:
        return self.title

    def scoring_criteria(self) -> list[Criterion]:
        return [criterion.as_scoring_criterion() for criterion in self.criteria.all()]

    def _training_submissions(self) -> models.QuerySet:
        # An erased learner's released essay keeps its grade, not its text.
        return self.submissions.filter(is_current=True).exclude(text="")

    def confirmed_count(self, criteria: list) -> int:
        """How many essays :meth:`confirmed_scores` would return, counted in the database
        (``criteria``: this assignment's, already loaded)."""
        scored = self._training_submissions().annotate(scored=models.Count("scores"))
        return scored.filter(scored=len(criteria)).count()

    def confirmed_scores(self) -> ConfirmedScores:
        """Current submissions scored on every criterion, with those scores: the training
        data of the learned scorer."""
        criteria = list(self.criteria.all())
        submissions = self._training_submissions().prefetch_related("scores").order_by("pk")
        confirmed = ConfirmedScores(
            submission_ids=[], texts=[], scores={criterion.name: [] for criterion in criteria}
        )
        for submission in submissions:
            by_criterion = {score.criterion_id: score.score for score in submission.scores.all()}
            if any(criterion.pk not in by_criterion for criterion in criteria):
                continue
            confirmed.submission_ids.append(submission.pk)
            confirmed.texts.append(submission.text)
            for criterion in criteria:
                confirmed.scores[criterion.name].append(float(by_criterion[criterion.pk]))
        return confirmed


@dataclass(frozen=True)
class ConfirmedScores:
    """An assignment's confirmed grades, one entry per submission, in submission order."""

    submission_ids: list[int]
    texts: list[str]
    scores: dict[str, list[float]]  # per criterion name, aligned with ``texts``

    def __len__(self) -> int:
        return len(self.texts)

    def digest(self) -> str:
        """A fingerprint that changes when any essay or score does: a grade edited after
        confirming leaves the count as it was but must still refit the scorer."""
        content = json.dumps(
            [
                self.submission_ids,
                [hashlib.sha256(text.encode()).hexdigest() for text in self.texts],
                sorted(self.scores.items()),
            ]
        )
        return hashlib.sha256(content.encode()).hexdigest()


class RubricCriterion(models.Model):
    assignment = models.ForeignKey(Assignment, on_delete=models.CASCADE, related_name="criteria")
    position = models.PositiveSmallIntegerField(_("position"), default=0)
    name = models.CharField(_("name"), max_length=100)
    min_score = models.DecimalField(_("lowest score"), max_digits=6, decimal_places=2)
    max_score = models.DecimalField(_("highest score"), max_digits=6, decimal_places=2)
    step = models.DecimalField(_("step"), max_digits=6, decimal_places=2, default=Decimal("1"))
    # {"<score>": "what work at this level looks like"}, shown to teachers and the grader.
    level_descriptors = models.JSONField(_("level descriptors"), default=dict, blank=True)
    # A released score on a tagged criterion is evidence for the learner model.
    concept = models.ForeignKey(
        "learners.Concept",
        verbose_name=_("concept"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="rubric_criteria",
    )

    class Meta:
        ordering = ["assignment", "position", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["assignment", "name"], name="rubric_criterion_name_unique"
            ),
            models.CheckConstraint(
                condition=models.Q(min_score__gte=0), name="rubric_criterion_min_not_negative"
            ),
            models.CheckConstraint(
                condition=models.Q(max_score__gt=models.F("min_score")),
                name="rubric_criterion_max_above_min",
            ),
            models.CheckConstraint(
                condition=models.Q(step__gt=0), name="rubric_criterion_step_positive"
            ),
        ]
        verbose_name = _("rubric criterion")
        verbose_name_plural = _("rubric criteria")

    def __str__(self) -> str:
        return f"{self.name} ({self.min_score:g}–{self.max_score:g})"

    def clean(self) -> None:
        if self.min_score is None or self.max_score is None or not self.step:
            return
        if (self.max_score - self.min_score) % self.step:
            raise ValidationError(_("The range must be a whole number of steps."))

    def as_scoring_criterion(self) -> Criterion:
        return Criterion(
            name=self.name,
            min=float(self.min_score),
            max=float(self.max_score),
            step=float(self.step),
        )

    def allows(self, score: Decimal) -> bool:
        return (
            self.min_score <= score <= self.max_score and (score - self.min_score) % self.step == 0
        )


class SubmissionQuerySet(models.QuerySet):
    def current(self) -> SubmissionQuerySet:
        return self.filter(is_current=True)

    def for_learner(self, user: User) -> SubmissionQuerySet:
        return self.filter(learner=user)


class Submission(models.Model):
    # Not a column: the open regrade requests, prefetched by the review queue
    # (grading.selectors._with_review_data).
    open_regrades: list[RegradeRequest]

    assignment = models.ForeignKey(Assignment, on_delete=models.CASCADE, related_name="submissions")
    learner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="submissions"
    )
    text = models.TextField(_("text"))
    # A resubmission keeps the earlier versions; only the current one is graded.
    is_current = models.BooleanField(_("current"), default=True)
    submitted_at = models.DateTimeField(_("submitted"), default=timezone.now)

    objects = SubmissionQuerySet.as_manager()

    class Meta:
        ordering = ["-submitted_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["assignment", "learner"],
                condition=models.Q(is_current=True),
                name="one_current_submission_per_learner",
            ),
        ]
        verbose_name = _("submission")
        verbose_name_plural = _("submissions")

    def __str__(self) -> str:
        return f"{self.learner} — {self.assignment}"


class CriterionScore(models.Model):
    """The teacher's score of one submission on one criterion."""

    submission = models.ForeignKey(Submission, on_delete=models.CASCADE, related_name="scores")
    criterion = models.ForeignKey(RubricCriterion, on_delete=models.CASCADE, related_name="scores")
    score = models.DecimalField(_("score"), max_digits=6, decimal_places=2)
    scored_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    scored_at = models.DateTimeField(_("scored"), default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["submission", "criterion"], name="one_score_per_criterion"
            ),
            models.CheckConstraint(
                condition=models.Q(score__gte=0), name="criterion_score_not_negative"
            ),
        ]
        verbose_name = _("criterion score")
        verbose_name_plural = _("criterion scores")

    def __str__(self) -> str:
        return f"{self.criterion.name}: {self.score:g}"

    def clean(self) -> None:
        if self.score is not None and not self.criterion.allows(self.score):
            raise ValidationError({"score": _("This score is not on the criterion's scale.")})


# --- Grading workflow ---
# Written by the grading workflow (submissions.py, proposals.py, reviews.py, training.py,
# tasks.py, views.py): AI proposals, the teacher's review and release, regrade requests,
# exemplars and the stored learned scorer.


def rubric_version_of(criteria) -> str:
    """A short fingerprint of a rubric's criteria: a proposal made under one version is
    never mistaken for one under an edited rubric."""
    payload = [
        [c.pk, c.name, str(c.min_score), str(c.max_score), str(c.step), c.level_descriptors]
        for c in criteria
    ]
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


class Exemplar(models.Model):
    """An essay the teacher scored as an example; shown to the AI grader (few-shot)."""

    assignment = models.ForeignKey(Assignment, on_delete=models.CASCADE, related_name="exemplars")
    text = models.TextField(_("text"))
    # {"<criterion name>": score}
    scores = models.JSONField(_("scores"), default=dict)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["assignment", "position", "pk"]
        verbose_name = _("exemplar essay")
        verbose_name_plural = _("exemplar essays")

    def __str__(self) -> str:
        return f"{self.assignment} — exemplar {self.position + 1}"


WORKER_DIED_ERROR = "WorkerLost: the worker grading this essay stopped too many times"


class ProposalQuerySet(JobQuerySet):
    def done(self) -> ProposalQuerySet:
        return self.filter(status=Proposal.Status.DONE)

    def after_abandon(self, pk: int) -> None:
        """A proposal given up on counts as a failed grading, and its review moves on."""
        # Within the app, not at the top: proposals imports this module.
        from grading.proposals import proposal_failed

        proposal_failed(proposal_id=pk)


class Proposal(Job):
    """One proposed grade of one submission under one rubric version, from one source: a
    tracked job (``config/jobs.py``).

    The unique constraint is what makes grading idempotent: a retried or redelivered task
    finds the row and claims it with a conditional update, or finds it done.
    """

    class Source(models.TextChoices):
        LLM = "llm", _("Language model")
        SCORER = "scorer", _("Learned scorer")

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    QUEUED, RUNNING, FAILED = Status.QUEUED, Status.RUNNING, Status.FAILED
    FINISHED_FIELD = "finished_at"
    LOST_ERROR = WORKER_DIED_ERROR

    submission = models.ForeignKey(Submission, on_delete=models.CASCADE, related_name="proposals")
    rubric_version = models.CharField(max_length=32)
    source = models.CharField(max_length=10, choices=Source.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    # {"<criterion id>": {"score", "rationale", "evidence": [quotes], "confidence"}}
    criteria = models.JSONField(default=dict, blank=True)
    # {"strengths": [...], "next_steps": [...], "language": "en"}
    feedback = models.JSONField(default=dict, blank=True)
    dropped_quotes = models.PositiveIntegerField(default=0)
    notice = models.TextField(blank=True)
    model_name = models.CharField(max_length=200, blank=True)
    prompt_version = models.CharField(max_length=50, blank=True)
    usage = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = ProposalQuerySet.as_manager()  # type: ignore[misc]  # a Job subclass's own queryset

    class Meta:
        ordering = ["submission", "source"]
        constraints = [
            models.UniqueConstraint(
                fields=["submission", "rubric_version", "source"],
                name="one_proposal_per_submission_rubric_source",
            ),
            models.CheckConstraint(
                condition=models.Q(source__in=["llm", "scorer"]), name="proposal_source_known"
            ),
        ]
        # The recovery sweep's query, every minute: unfinished proposals by lease.
        indexes = [
            models.Index(
                fields=["lease_until"],
                condition=models.Q(status__in=["queued", "running"]),
                name="proposal_unfinished_lease",
            )
        ]
        verbose_name = _("grade proposal")
        verbose_name_plural = _("grade proposals")

    def __str__(self) -> str:
        return f"{self.get_source_display()} proposal for {self.submission_id}"

    @property
    def failure_reason(self) -> str:
        """Why it failed, translated, for the review page ('' when the stored error is no
        language model failure, e.g. a worker that died)."""
        return llm_failure_reason(self.error) if self.status == self.Status.FAILED else ""

    def for_criterion(self, criterion_id: int) -> dict:
        return self.criteria.get(str(criterion_id)) or {}


class ReviewQuerySet(models.QuerySet):
    def in_queue(self) -> ReviewQuerySet:
        """Current submissions the teacher still has to confirm, most uncertain first."""
        return self.filter(
            submission__is_current=True,
            status__in=[Review.Status.WAITING, Review.Status.PENDING],
        ).order_by("-priority", "submission__submitted_at", "pk")


class Review(models.Model):
    """The teacher's side of one submission: queue position, flag, release."""

    # Not columns: set on the review queue's reviews (grading.selectors._with_versions).
    version: int
    earlier_versions: list[Version]

    class Status(models.TextChoices):
        WAITING = "waiting", _("Waiting for a proposal")
        PENDING = "pending", _("To review")
        CONFIRMED = "confirmed", _("Confirmed, not released")
        RELEASED = "released", _("Released")

    submission = models.OneToOneField(Submission, on_delete=models.CASCADE, related_name="review")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.WAITING)
    # Higher is more uncertain and comes first: flags, disagreement, low confidence.
    priority = models.FloatField(default=0.0, db_index=True)
    flagged = models.BooleanField(default=False)
    # [{"code": "instructions", "message": "...", "excerpt": "..."}]
    flags = models.JSONField(default=list, blank=True)
    # {"<criterion id>": "comment for the student"}
    comments = models.JSONField(default=dict, blank=True)
    # What the student sees: a snapshot taken at release, so later edits stay private.
    released = models.JSONField(null=True, blank=True)
    released_at = models.DateTimeField(null=True, blank=True)
    released_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    objects = ReviewQuerySet.as_manager()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=["waiting", "pending", "confirmed", "released"]),
                name="review_status_known",
            ),
        ]
        verbose_name = _("review")
        verbose_name_plural = _("reviews")

    def __str__(self) -> str:
        return f"Review of {self.submission_id} ({self.status})"


class RegradeRequest(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", _("Open")
        RESOLVED = "resolved", _("Resolved")

    submission = models.ForeignKey(
        Submission, on_delete=models.CASCADE, related_name="regrade_requests"
    )
    comment = models.TextField(_("comment"))
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["submission"],
                condition=models.Q(status="open"),
                name="one_open_regrade_per_submission",
            ),
        ]
        verbose_name = _("regrade request")
        verbose_name_plural = _("regrade requests")

    def __str__(self) -> str:
        return f"Regrade of {self.submission_id} ({self.status})"


class StoredScorer(models.Model):
    """The learned scorer fitted on an assignment's confirmed grades (grading.scoring)."""

    assignment = models.OneToOneField(
        Assignment, on_delete=models.CASCADE, related_name="stored_scorer"
    )
    rubric_version = models.CharField(max_length=32)
    data = models.BinaryField()
    training_size = models.PositiveIntegerField(default=0)
    # ConfirmedScores.digest of the grades it was fitted on; empty for scorers stored before.
    training_digest = models.CharField(max_length=64, blank=True, default="")
    trained_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("stored scorer")
        verbose_name_plural = _("stored scorers")

    def __str__(self) -> str:
        return f"Scorer for {self.assignment} ({self.training_size} essays)"


class SubmissionVector(models.Model):
    """How the learned scorer's embedding model reads a submission
    (:func:`grading.scoring.essay_vectors`), kept so that refits and proposals never run
    the model over the same essay twice. ``reader`` names the model and chunking that made
    it; a vector made by another reader is made again."""

    submission = models.OneToOneField(
        Submission, on_delete=models.CASCADE, primary_key=True, related_name="vector"
    )
    reader = models.CharField(max_length=64)
    data = models.BinaryField()

    class Meta:
        verbose_name = _("submission vector")
        verbose_name_plural = _("submission vectors")

    def __str__(self) -> str:
        return f"Vector of submission {self.submission_id}"
