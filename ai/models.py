"""The ledger of calls to the language model: one row per call, written by the client.

Every call the product makes to the model server (streamed or JSON, finished, stopped or
failed) gets one ``LLMCall`` row from ``ai.ledger.llm_call_record``. The daily token
budget (``ai.budget``), the staff usage page (``ai.usage``) and the Prometheus metrics read
it or are fed with it, so they agree on what a call cost.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class LLMCall(models.Model):
    """One call to the language model server and what it cost."""

    class Purpose(models.TextChoices):
        TUTOR = "tutor", _("Tutor replies")
        MEMORY = "memory", _("Memory summaries")
        GRADING = "grading", _("Grade proposals")
        PRACTICE = "practice", _("Practice questions")
        OTHER = "other", _("Other")

    class Outcome(models.TextChoices):
        FINISHED = "finished", _("Finished")
        # Closed by the caller: the student stopped it, or the reply ran out of time.
        STOPPED = "stopped", _("Stopped")
        # The server could not be reached, timed out or stayed overloaded (429/5xx).
        TRANSIENT_ERROR = "transient_error", _("Failed (server unavailable)")
        # The server refused the request, or answered with something unusable.
        PERMANENT_ERROR = "permanent_error", _("Failed (request or answer unusable)")

    class TokensSource(models.TextChoices):
        SERVER = "server", _("Reported by the server")
        ESTIMATED = "estimated", _("Estimated here")  # the server reported none
        NONE = "none", _("Unknown")  # nothing reached the model to count

    # Nullable: some calls are for nobody in particular (a teacher's batch job whose
    # requester is unknown). Erasure deletes a person's rows (privacy/personal_data.py).
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="llm_calls",
    )
    course = models.ForeignKey(
        "learners.Course",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="llm_calls",
    )
    purpose = models.CharField(max_length=20, choices=Purpose.choices)
    model = models.CharField(max_length=200, blank=True)
    prompt_version = models.CharField(max_length=100, blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    tokens_source = models.CharField(
        max_length=10, choices=TokensSource.choices, default=TokensSource.NONE
    )
    ttft_seconds = models.FloatField(null=True, blank=True)
    duration_seconds = models.FloatField(null=True, blank=True)
    queue_wait_seconds = models.FloatField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(null=True, blank=True)
    outcome = models.CharField(max_length=20, choices=Outcome.choices)
    # The client's error class (``LLMUnavailable``, ``LLMBadResponse`` ...); "" when none.
    error_kind = models.CharField(max_length=50, blank=True)
    # Whether a reply was written in the learner's language (checked by its caller, the
    # tutor, after the stream); None when not checked or too short to tell.
    reply_language_matches = models.BooleanField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            # The usage page: one course's calls over the last days.
            models.Index(fields=["course", "created_at"], name="llmcall_course_day"),
            # The budget: one person's calls in one course today.
            models.Index(fields=["user", "course", "created_at"], name="llmcall_user_course_day"),
        ]
        verbose_name = _("language model call")
        verbose_name_plural = _("language model calls")

    def __str__(self) -> str:
        return f"{self.purpose} {self.model} {self.outcome} at {self.created_at:%Y-%m-%d %H:%M}"

    @property
    def tokens(self) -> int:
        """Prompt plus completion tokens: the one definition of a call's tokens."""
        return (self.prompt_tokens or 0) + (self.completion_tokens or 0)
