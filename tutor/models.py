"""Tables of the tutor app: tutoring conversations (course material is the material app's)."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop

from config.jobs import Job, JobQuerySet

if TYPE_CHECKING:
    pass


# --- Conversations ---
# A learner's tutoring conversations in a course: the messages, the ratings of replies
# and the summaries ("memories") the tutor keeps between sessions.


class Conversation(models.Model):
    course = models.ForeignKey(
        "learners.Course", on_delete=models.CASCADE, related_name="conversations"
    )
    learner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations"
    )
    title = models.CharField(_("title"), max_length=200, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)
    # Set once the conversation's memory summary has been written (the writing itself is
    # a job: MemorySummary).
    summarized_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-updated", "-pk"]
        indexes = [models.Index(fields=["learner", "course", "-updated"])]
        verbose_name = _("conversation")
        verbose_name_plural = _("conversations")

    def __str__(self) -> str:
        return self.title or f"Conversation {self.pk}"


class MessageQuerySet(JobQuerySet):
    def unfinished(self) -> MessageQuerySet:
        return self.filter(status__in=Message.UNFINISHED)

    def abandon_fields(self, pk: int) -> dict:
        """A reply given up keeps what its worker streamed (nothing when Redis is away)."""
        # The stream code (and the Redis client) load with the sweep, not with the models.
        from tutor import streams

        try:
            return {"text": streams.reply_stream_text(message_id=pk)}
        except streams.UNAVAILABLE:
            return {"text": ""}

    def after_abandon(self, pk: int) -> None:
        # Readers stop at the end marker; without Redis they fall back to the stored status.
        from tutor import streams

        with contextlib.suppress(*streams.UNAVAILABLE):
            streams.reply_stream_end(message_id=pk, status=Message.Status.FAILED)


class Message(Job):
    """A turn of a conversation. The tutor's reply is also a job (``config/jobs.py``):
    pending until a worker claims it, streaming while it writes under a lease. A reply is
    written once per request: one whose worker died is failed (keeping what it streamed)
    for the student to retry, never taken over (``max_attempts`` is 1)."""

    # Not columns: set on a conversation page's messages for its template
    # (tutor.conversation_views).
    streamed_text: str
    stream_after: str
    html: str

    class Role(models.TextChoices):
        USER = "user", _("Student")
        ASSISTANT = "assistant", _("Tutor")

    class Status(models.TextChoices):
        PENDING = "pending", _("Waiting")
        STREAMING = "streaming", _("Writing")
        DONE = "done", _("Done")
        STOPPED = "stopped", _("Stopped")
        FAILED = "failed", _("Failed")

    class Mode(models.TextChoices):
        ONLINE = "online", _("Language model")
        OFFLINE = "offline", _("Offline (course passages)")

    UNFINISHED = (Status.PENDING, Status.STREAMING)
    FINISHED = (Status.DONE, Status.STOPPED, Status.FAILED)
    QUEUED, RUNNING, FAILED = Status.PENDING, Status.STREAMING, Status.FAILED
    FINISHED_FIELD = "finished"
    LOST_ERROR = gettext_noop("The tutor stopped answering this message; try again.")

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    role = models.CharField(_("role"), max_length=10, choices=Role.choices)
    text = models.TextField(_("text"), blank=True)
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.DONE
    )
    # A photo or diagram the student attached (checked by ``tutor/images.py``).
    image = models.FileField(
        _("image"), upload_to="tutor/images/%Y/%m/", max_length=200, null=True, blank=True
    )
    image_type = models.CharField(_("image type"), max_length=20, blank=True)
    # True when the image was read by OCR (the model cannot see images); then image_text is
    # what was read, "" when nothing could be read. False: the model sees the image itself.
    image_ocr = models.BooleanField(_("image read by OCR"), default=False)
    image_text = models.TextField(_("text read from the image"), blank=True)
    # What a student may be shown about a failure; the technical cause goes to the logs.
    error = models.CharField(_("error"), max_length=300, blank=True)
    mode = models.CharField(_("mode"), max_length=10, choices=Mode.choices, blank=True)
    # The numbered passages the reply was given: [{"n", "chunk_id", "title", "section",
    # "page", "url", "excerpt"}]; [n] in the text refers to the entry with that "n".
    citations = models.JSONField(_("citations"), default=list, blank=True)
    # A teacher-approved question on a concept the reply's passages teach, asked under the
    # reply; the student's answer to it is evidence for the learner model.
    check_question = models.ForeignKey(
        "learning.PracticeQuestion",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    check_attempt = models.OneToOneField(
        "learning.PracticeAttempt",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="tutor_reply",
    )
    model = models.CharField(_("model"), max_length=200, blank=True)
    prompt_version = models.CharField(_("prompt version"), max_length=100, blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    # The estimate the context builder made, next to the server's own count above.
    context_tokens_estimate = models.PositiveIntegerField(null=True, blank=True)
    ttft_seconds = models.FloatField(_("time to first token (s)"), null=True, blank=True)
    usage = models.JSONField(_("usage record"), default=dict, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    finished = models.DateTimeField(null=True, blank=True)

    # django-stubs types a model's manager as a ClassVar of the base; a job model's own
    # QuerySet manager is the override Django expects.
    objects = MessageQuerySet.as_manager()  # type: ignore[misc]

    class Meta:
        ordering = ["pk"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(role__in=["user", "assistant"]), name="message_role_known"
            ),
            models.CheckConstraint(
                condition=models.Q(
                    status__in=["pending", "streaming", "done", "stopped", "failed"]
                ),
                name="message_status_known",
            ),
            # One reply at a time per conversation: a second post, a retry or a redelivered
            # task can never leave two replies waiting or being written.
            models.UniqueConstraint(
                fields=["conversation"],
                condition=models.Q(status__in=["pending", "streaming"]),
                name="one_unfinished_reply_per_conversation",
            ),
        ]
        indexes = [models.Index(fields=["status", "created"])]
        verbose_name = _("message")
        verbose_name_plural = _("messages")

    def __str__(self) -> str:
        return f"{self.get_role_display()}: {self.text[:60]}"

    @classmethod
    def max_attempts(cls) -> int:
        return 1

    @property
    def is_unfinished(self) -> bool:
        return self.status in self.UNFINISHED

    @property
    def is_assistant(self) -> bool:
        return self.role == self.Role.ASSISTANT

    @property
    def image_unread(self) -> bool:
        """An attached image that OCR was asked to read but could not."""
        return bool(self.image) and self.image_ocr and not self.image_text


class Feedback(models.Model):
    """A learner's rating of one tutor reply (+1 helpful, -1 not), with an optional comment."""

    message = models.OneToOneField(Message, on_delete=models.CASCADE, related_name="feedback")
    rating = models.SmallIntegerField(
        _("rating"), choices=[(1, _("Helpful")), (-1, _("Not helpful"))]
    )
    comment = models.TextField(_("comment"), blank=True, max_length=2000)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(rating__in=[1, -1]), name="feedback_rating_plus_minus_one"
            )
        ]
        verbose_name = _("feedback")
        verbose_name_plural = _("feedback")

    def __str__(self) -> str:
        return f"{self.rating:+d} on message {self.message_id}"


class Memory(models.Model):
    """What the tutor remembers of an earlier session, shown to and deletable by the learner."""

    learner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="tutor_memories"
    )
    course = models.ForeignKey(
        "learners.Course", on_delete=models.CASCADE, related_name="tutor_memories"
    )
    conversation = models.ForeignKey(
        Conversation, on_delete=models.SET_NULL, null=True, blank=True, related_name="memories"
    )
    summary = models.TextField(_("summary"))
    model = models.CharField(_("model"), max_length=200, blank=True)
    prompt_version = models.CharField(_("prompt version"), max_length=100, blank=True)
    usage = models.JSONField(_("usage record"), default=dict, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created", "-pk"]
        indexes = [models.Index(fields=["learner", "course", "-created"])]
        verbose_name = _("memory")
        verbose_name_plural = _("memories")

    def __str__(self) -> str:
        return self.summary[:60]


class MemorySummary(Job):
    """The writing of one conversation's memory (``Memory``): a tracked job
    (``config/jobs.py``). Its row is made when the summary is asked for (the conversation
    ended, or grew long); the task claims it, writes the memory under a lease, and the
    recovery sweep sends it again if its task message was lost or its worker died. A
    failed one is queued again when the conversation next ends."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Writing")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    QUEUED, RUNNING, FAILED = Status.QUEUED, Status.RUNNING, Status.FAILED
    FINISHED_FIELD = "finished_at"
    LOST_ERROR = "WorkerLost: the worker writing this memory stopped too many times"

    # One per conversation: a conversation's memory is written once.
    conversation = models.OneToOneField(
        Conversation, on_delete=models.CASCADE, related_name="memory_summary"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        # The recovery sweep's query, every minute: unfinished summaries by lease.
        indexes = [
            models.Index(
                fields=["lease_until"],
                condition=models.Q(status__in=["queued", "running"]),
                name="memorysummary_unfinished_lease",
            )
        ]
        verbose_name = _("memory summary job")
        verbose_name_plural = _("memory summary jobs")

    def __str__(self) -> str:
        return f"memory of conversation {self.conversation_id} ({self.status})"
