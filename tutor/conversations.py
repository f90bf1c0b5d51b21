"""Write use cases of tutoring conversations: start one, post a message, stop or retry a
reply, rate a reply, and the learner's memories.

A posted message is stored before anything else happens; its reply is a pending assistant
message that a task on the ``llm`` queue claims after the transaction commits (see
``tutor/conversation_tasks.py`` and ``tutor/replies.py``).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from learners.models import Course
from tutor import images, streams
from tutor.models import Conversation, Feedback, Memory, Message

logger = logging.getLogger(__name__)

MESSAGE_MAX_CHARS = 4000
COMMENT_MAX_CHARS = 2000
TITLE_CHARS = 80
# After this many messages a conversation's memory is written even if it never "ends".
MEMORY_AFTER_MESSAGES = 20


def reply_max_seconds() -> float:
    """How long one reply may take before the worker gives up on it."""
    return float(getattr(settings, "TUTOR_REPLY_MAX_SECONDS", 300))


def reply_queue_max_seconds() -> float:
    """How long a reply may wait for a worker before the page calls it lost."""
    return float(getattr(settings, "TUTOR_REPLY_QUEUE_SECONDS", 900))


STALE_MESSAGE = "The tutor stopped answering this message; try again."


def _enqueue_reply(message_id: int) -> None:
    from tutor.conversation_tasks import reply_write

    transaction.on_commit(lambda: reply_write.apply_async(args=[message_id], queue="llm"))


def _check_owner(conversation: Conversation, learner) -> None:
    if conversation.learner_id != learner.pk:
        raise PermissionDenied("This conversation belongs to someone else.")


def conversation_start(*, course: Course, learner) -> Conversation:
    """A new, empty conversation; the learner's previous one gets its memory written."""
    previous = Conversation.objects.filter(course=course, learner=learner).first()
    conversation = Conversation.objects.create(course=course, learner=learner)
    if previous is not None and previous.messages.exists():
        conversation_end(conversation=previous, learner=learner)
    return conversation


def tutor_access_check(*, learner, course: Course) -> None:
    """ValidationError when the learner may not use the tutor now: consent to AI
    processing missing, or a guardian's needed (code ``consent``); today's AI token
    budget used up (code ``ai_budget``)."""
    from learners.ai_budget import ai_budget_check
    from learners.consent import ai_access

    access = ai_access(user=learner, course=course)
    if not access.allowed:
        raise ValidationError(access.reason, code="consent")
    ai_budget_check(user=learner, course=course)


def message_validate(*, text: str, image: UploadedFile | None = None) -> str:
    """The message as it will be stored; ValidationError when empty (no text and no
    image), too long, or when the attached image is refused."""
    text = text.strip()
    if image is not None:
        images.image_check(file=image)
    elif not text:
        raise ValidationError(_("Write a message first."), code="empty")
    if len(text) > MESSAGE_MAX_CHARS:
        raise ValidationError(
            _("Your message is %(length)d characters long; the limit is %(limit)d.")
            % {"length": len(text), "limit": MESSAGE_MAX_CHARS},
            code="too_long",
        )
    return text


@transaction.atomic
def message_post(
    *, conversation: Conversation, learner, text: str, image: UploadedFile | None = None
) -> tuple[Message, Message]:
    """Store the student's message (with its image, if any) and a pending reply, and queue
    the reply's writing.

    An image goes to the model as it is when the model can see images; otherwise its text
    is read by OCR now, so the student sees what the tutor will be given.
    Raises ValidationError for an empty or too long message, a refused image, or while the
    previous reply is still being written.
    """
    from tutor.llm import llm_supports_images

    _check_owner(conversation, learner)
    tutor_access_check(learner=learner, course=conversation.course)
    checked = images.image_check(file=image) if image is not None else None
    text = text.strip()
    if checked is None or text:
        text = message_validate(text=text)
    image_ocr = checked is not None and not llm_supports_images()
    image_text = images.image_text_read(data=checked.data) if image_ocr else ""
    # Lock the conversation so two quick posts cannot both pass the check below.
    conversation = Conversation.objects.select_for_update().get(pk=conversation.pk)
    if conversation.messages.unfinished().exists():
        raise ValidationError(
            _("The tutor is still answering; wait for the reply or stop it first."),
            code="busy",
        )
    question = Message(
        conversation=conversation,
        role=Message.Role.USER,
        text=text,
        status=Message.Status.DONE,
        image_ocr=image_ocr,
        image_text=image_text,
    )
    if checked is not None:
        question.image_type = checked.mime_type
        question.image.save(f"message.{checked.extension}", ContentFile(checked.data), save=False)
    question.save()
    reply = Message.objects.create(
        conversation=conversation, role=Message.Role.ASSISTANT, status=Message.Status.PENDING
    )
    # A stream left under this id (a restored database reuses ids) must not be replayed.
    streams.reply_stream_reset(message_id=reply.pk)
    fields = ["updated"]
    if not conversation.title:
        text = text or _("Image")
        conversation.title = text if len(text) <= TITLE_CHARS else text[: TITLE_CHARS - 1] + "…"
        fields.append("title")
    conversation.save(update_fields=fields)
    _enqueue_reply(reply.pk)
    if conversation.messages.count() >= MEMORY_AFTER_MESSAGES and not conversation.summarized_at:
        _enqueue_memory(conversation.pk)
    return question, reply


def reply_stop(*, reply: Message, learner) -> None:
    """Ask for a reply to stop. A reply still waiting stops at once; one being written
    stops at the worker's next check, keeping what it wrote."""
    _check_owner(reply.conversation, learner)
    stopped_waiting = Message.objects.filter(pk=reply.pk, status=Message.Status.PENDING).update(
        status=Message.Status.STOPPED, finished=timezone.now()
    )
    if stopped_waiting:
        streams.reply_stream_end(message_id=reply.pk, status=Message.Status.STOPPED)
    else:
        streams.reply_stop_request(message_id=reply.pk)


def reply_retry(*, reply: Message, learner) -> Message:
    """Write a failed (or stopped) reply again, from the start."""
    _check_owner(reply.conversation, learner)
    tutor_access_check(learner=learner, course=reply.conversation.course)
    with transaction.atomic():
        retried = Message.objects.filter(
            pk=reply.pk, status__in=[Message.Status.FAILED, Message.Status.STOPPED]
        ).update(
            status=Message.Status.PENDING,
            text="",
            error="",
            citations=[],
            started=None,
            finished=None,
            ttft_seconds=None,
            prompt_tokens=None,
            completion_tokens=None,
            usage={},
        )
        if not retried:
            raise ValidationError(
                _("Only a failed or stopped reply can be retried."), code="not_retryable"
            )
        Feedback.objects.filter(message_id=reply.pk).delete()
        # The old stream (with its end marker) must not be replayed to the new reader.
        streams.reply_stream_reset(message_id=reply.pk)
        _enqueue_reply(reply.pk)
    reply.refresh_from_db()
    return reply


def replies_expire_stale(*, conversation: Conversation) -> int:
    """Mark failed the replies whose worker is gone, so none stays "writing" forever.

    A reply being written past its time limit (plus a minute's grace), or waiting for a
    worker for longer than ``reply_queue_max_seconds()``, is failed with a message the
    student can retry from; the text it streamed is kept.
    """
    now = timezone.now()
    stale = list(
        conversation.messages.filter(
            status=Message.Status.STREAMING,
            started__lt=now - timedelta(seconds=reply_max_seconds() + 60),
        ).values_list("pk", "status")
    ) + list(
        conversation.messages.filter(
            status=Message.Status.PENDING,
            created__lt=now - timedelta(seconds=reply_queue_max_seconds()),
        ).values_list("pk", "status")
    )
    expired = 0
    for pk, status in stale:
        text = streams.reply_stream_text(message_id=pk)
        if Message.objects.filter(pk=pk, status=status).update(
            status=Message.Status.FAILED, error=STALE_MESSAGE, text=text, finished=now
        ):
            streams.reply_stream_end(message_id=pk, status=Message.Status.FAILED)
            logger.warning("Reply %s was %s past its time limit; marked failed.", pk, status)
            expired += 1
    return expired


def feedback_record(*, reply: Message, learner, rating: int, comment: str = "") -> Feedback:
    """The learner's rating (+1/-1) of one finished tutor reply; rating again replaces it."""
    _check_owner(reply.conversation, learner)
    if reply.role != Message.Role.ASSISTANT or reply.status not in (
        Message.Status.DONE,
        Message.Status.STOPPED,
    ):
        raise ValidationError(
            _("Only a finished reply of the tutor can be rated."), code="unfinished"
        )
    if rating not in (1, -1):
        raise ValidationError(_("A rating is thumbs up or thumbs down."))
    comment = comment.strip()
    if len(comment) > COMMENT_MAX_CHARS:
        raise ValidationError(
            _("The comment is too long (at most %(limit)d characters).")
            % {"limit": COMMENT_MAX_CHARS}
        )
    feedback, _created = Feedback.objects.update_or_create(
        message=reply, defaults={"rating": rating, "comment": comment}
    )
    return feedback


# --- memory --------------------------------------------------------------------------


def _enqueue_memory(conversation_id: int) -> None:
    from tutor.conversation_tasks import memory_write

    transaction.on_commit(lambda: memory_write.apply_async(args=[conversation_id], queue="llm"))


def conversation_end(*, conversation: Conversation, learner) -> None:
    """The learner is done with a conversation: queue the writing of its memory."""
    _check_owner(conversation, learner)
    if conversation.summarized_at is None and conversation.messages.exists():
        _enqueue_memory(conversation.pk)


def memory_write(*, conversation_id: int) -> Memory | None:
    """Summarise a conversation into a memory, once. Called by the task; claims the work
    with a conditional update so a redelivered task does nothing."""
    from tutor.replies import conversation_summarize

    claimed = Conversation.objects.filter(pk=conversation_id, summarized_at__isnull=True).update(
        summarized_at=timezone.now()
    )
    if not claimed:
        return None
    conversation = Conversation.objects.select_related("course", "learner").get(pk=conversation_id)
    try:
        summary = conversation_summarize(conversation=conversation)
    except Exception:
        # Leave it unclaimed so the next end (or turn) tries again.
        Conversation.objects.filter(pk=conversation_id).update(summarized_at=None)
        raise
    if summary is None:
        return None
    return Memory.objects.create(
        learner=conversation.learner,
        course=conversation.course,
        conversation=conversation,
        summary=summary.text,
        model=summary.model,
        prompt_version=summary.prompt_version,
        usage=summary.usage,
    )


def memory_delete(*, memory: Memory, learner) -> None:
    if memory.learner_id != learner.pk:
        raise PermissionDenied("This memory belongs to someone else.")
    memory.delete()


def memories_delete_all(*, course: Course, learner) -> int:
    deleted, _per_model = Memory.objects.filter(course=course, learner=learner).delete()
    return deleted
