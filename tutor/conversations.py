"""Write use cases of tutoring conversations: start one, post a message, stop or retry a
reply, rate a reply, and the learner's memories.

A posted message is stored before anything else happens; its reply is a pending assistant
message that a task on the ``llm`` queue claims after the transaction commits (see
``tutor/conversation_tasks.py`` and ``tutor/replies.py``).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.db.models import Count, Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from ai.budget import ai_budget_check
from ai.llm import llm_supports_images
from config.celery import enqueue_on_commit
from config.jobs import Claim, queued_until
from learners.consent import ai_access
from learners.models import Course
from learning.models import MasteryEvidence
from learning.practice import practice_answer
from tutor import images, streams
from tutor.models import Conversation, Feedback, Memory, MemorySummary, Message

if TYPE_CHECKING:
    from learners.models import User


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


# What a reply whose worker is gone says (config.jobs: the job's LOST_ERROR).
STALE_MESSAGE = Message.LOST_ERROR


BUSY_MESSAGE = gettext_noop("The tutor is still answering; wait for the reply or stop it first.")


def _enqueue_reply(message_id: int) -> None:
    """Send the reply's task once the transaction commits (if the broker is away, the
    reply stays waiting for the recovery sweep)."""
    from tutor.conversation_tasks import reply_write

    enqueue_on_commit(reply_write, message_id)


def _stream_reset(message_id: int) -> None:
    """Forget an earlier stream under this id; with Redis away the worker does it when it
    starts writing (``replies.reply_write``)."""
    try:
        streams.reply_stream_reset(message_id=message_id)
    except streams.UNAVAILABLE as error:
        logger.warning("Could not reset the stream of reply %s: %r", message_id, error)


def reply_claim(*, message_id: int) -> Claim | None:
    """Take a waiting reply for this worker (``config.jobs``); None when it is not waiting
    (written, stopped, or taken by another worker), so a redelivered task does nothing."""
    return Message.objects.claim(message_id)


def _check_owner(conversation: Conversation, learner: User) -> None:
    if conversation.learner_id != learner.pk:
        raise PermissionDenied("This conversation belongs to someone else.")


def conversation_start(*, course: Course, learner: User) -> Conversation:
    """A new, empty conversation; the learner's previous one gets its memory written."""
    previous = Conversation.objects.filter(course=course, learner=learner).first()
    conversation = Conversation.objects.create(course=course, learner=learner)
    if previous is not None and previous.messages.exists():
        conversation_end(conversation=previous, learner=learner)
    return conversation


def tutor_access_check(*, learner: User, course: Course) -> None:
    """ValidationError when the learner may not use the tutor now: consent to AI
    processing missing, or a guardian's needed (code ``consent``); today's AI token
    budget used up (code ``ai_budget``)."""
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


def message_post(
    *,
    conversation: Conversation,
    learner: User,
    text: str,
    image: UploadedFile | None = None,
    image_text: str | None = None,
) -> tuple[Message, Message]:
    """Store the student's message (with its image, if any) and a pending reply, and queue
    the reply's writing.

    An image goes to the model as it is when the model can see images; otherwise its text
    is what the tutor gets: ``image_text`` when the student has seen (and maybe corrected)
    what OCR read in the composer, else it is read by OCR now and shown with the message.
    Raises ValidationError for an empty or too long message, a refused image, or while the
    previous reply is still being written.
    """
    _check_owner(conversation, learner)
    tutor_access_check(learner=learner, course=conversation.course)
    checked = images.image_check(file=image) if image is not None else None
    text = text.strip()
    if checked is None or text:
        text = message_validate(text=text)
    image_ocr = checked is not None and not llm_supports_images()
    if not image_ocr or checked is None:
        image_text = ""
    elif image_text is None:
        image_text = images.image_text_read(data=checked.data)
    else:
        image_text = image_text.strip()
        if len(image_text) > MESSAGE_MAX_CHARS:
            raise ValidationError(
                _(
                    "The text read from your image is %(length)d characters long; the limit is "
                    "%(limit)d."
                )
                % {"length": len(image_text), "limit": MESSAGE_MAX_CHARS},
                code="too_long",
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
    reply = Message(
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        status=Message.Status.PENDING,
        lease_until=queued_until(),
    )
    try:
        with transaction.atomic():
            _turn_store(conversation, question, reply)
    except IntegrityError as error:
        # A post of the same instant (another tab) won the race past the check in
        # _turn_store: the database keeps one unfinished reply per conversation.
        if _constraint_of(error) != ONE_UNFINISHED_REPLY:
            raise
        raise ValidationError(_(BUSY_MESSAGE), code="busy") from error
    return question, reply


ONE_UNFINISHED_REPLY = "one_unfinished_reply_per_conversation"


def _constraint_of(error: IntegrityError) -> str | None:
    return getattr(getattr(error.__cause__, "diag", None), "constraint_name", None)


def _turn_store(conversation: Conversation, question: Message, reply: Message) -> None:
    """Store a turn's two messages (in one insert) and queue the reply; ValidationError
    (busy) while the previous reply is being written. Runs in a transaction. No lock:
    a concurrent post that passes the check as well fails on the constraint
    ``one_unfinished_reply_per_conversation`` (message_post answers it as busy too)."""
    counts = conversation.messages.aggregate(
        total=Count("pk"), unfinished=Count("pk", filter=Q(status__in=Message.UNFINISHED))
    )
    if counts["unfinished"]:
        raise ValidationError(_(BUSY_MESSAGE), code="busy")
    Message.objects.bulk_create([question, reply])
    # A stream left under this id (a restored database reuses ids) must not be replayed.
    _stream_reset(reply.pk)
    fields = ["updated"]
    if not conversation.title:
        text = question.text or _("Image")
        conversation.title = text if len(text) <= TITLE_CHARS else text[: TITLE_CHARS - 1] + "…"
        fields.append("title")
    conversation.save(update_fields=fields)
    _enqueue_reply(reply.pk)
    if not conversation.summarized_at and counts["total"] + 2 >= MEMORY_AFTER_MESSAGES:
        _enqueue_memory(conversation.pk)


def reply_stop(*, reply: Message, learner: User) -> None:
    """Ask for a reply to stop. A reply still waiting stops at once; one being written
    stops at the worker's next check, keeping what it wrote."""
    _check_owner(reply.conversation, learner)
    stopped_waiting = Message.objects.filter(pk=reply.pk, status=Message.Status.PENDING).update(
        status=Message.Status.STOPPED, finished=timezone.now(), lease_until=None
    )
    try:
        if stopped_waiting:
            streams.reply_stream_end(message_id=reply.pk, status=Message.Status.STOPPED)
        else:
            streams.reply_stop_request(message_id=reply.pk)
    except streams.UNAVAILABLE as error:
        # A reader falls back to the stored status; a reply being written cannot be told
        # to stop, but then its worker cannot write it either and it ends as failed.
        logger.warning("Could not signal the stop of reply %s: %r", reply.pk, error)


def reply_retry(*, reply: Message, learner: User) -> Message:
    """Write a failed (or stopped) reply again, from the start."""
    _check_owner(reply.conversation, learner)
    tutor_access_check(learner=learner, course=reply.conversation.course)
    try:
        with transaction.atomic():
            # Lock the conversation, as message_post does: one reply at a time.
            Conversation.objects.select_for_update().get(pk=reply.conversation_id)
            if reply.conversation.messages.unfinished().exclude(pk=reply.pk).exists():
                raise ValidationError(_(BUSY_MESSAGE), code="busy")
            retried = Message.objects.filter(
                pk=reply.pk, status__in=[Message.Status.FAILED, Message.Status.STOPPED]
            ).update(
                status=Message.Status.PENDING,
                text="",
                error="",
                citations=[],
                claimed_at=None,
                attempts=0,
                finished=None,
                ttft_seconds=None,
                prompt_tokens=None,
                completion_tokens=None,
                usage={},
                lease_until=queued_until(),
            )
            if not retried:
                raise ValidationError(
                    _("Only a failed or stopped reply can be retried."), code="not_retryable"
                )
            Feedback.objects.filter(message_id=reply.pk).delete()
            # The old stream (with its end marker) must not be replayed to the new reader.
            _stream_reset(reply.pk)
            _enqueue_reply(reply.pk)
    except IntegrityError as error:  # one_unfinished_reply_per_conversation
        raise ValidationError(_(BUSY_MESSAGE), code="busy") from error
    reply.refresh_from_db()
    return reply


def _overdue(now) -> Q:
    """Replies whose worker is gone although the lease does not say so: being written past
    the time limit with a minute's grace, or waiting for a worker for longer than
    ``reply_queue_max_seconds()``. (A reply being written whose lease lapsed is gone too:
    replies are never taken over.)"""
    return (
        Q(status=Message.Status.STREAMING)
        & (
            Q(lease_until__lt=now)
            | Q(claimed_at__lt=now - timedelta(seconds=reply_max_seconds() + 60))
        )
    ) | Q(
        status=Message.Status.PENDING,
        created__lt=now - timedelta(seconds=reply_queue_max_seconds()),
    )


def replies_recover() -> tuple[int, int]:
    """The recovery sweep's part for replies: fail those whose worker is gone (keeping
    what they streamed), and send again the task of those still waiting after their
    lease (the broker may have been down when it was sent). Returns (failed, sent again)."""
    now = timezone.now()
    failed, sent_again = Message.objects.recover(send=_enqueue_reply, now=now, also=_overdue(now))
    return failed, sent_again


def feedback_record(*, reply: Message, learner: User, rating: int, comment: str = "") -> Feedback:
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


def reply_check_answer(*, reply: Message, learner: User, answer: str):
    """Check the learner's answer to the question asked under a reply and record it as
    evidence for their learner model (``learning.practice.practice_answer``); once per
    reply. Returns the practice result; ValidationError for an empty or over-long answer,
    a reply without a question, or one already answered."""
    _check_owner(reply.conversation, learner)
    with transaction.atomic():
        locked = Message.objects.select_for_update().get(pk=reply.pk)
        question = locked.check_question
        if question is None:
            raise ValidationError(_("This reply has no question to answer."), code="no_question")
        if locked.check_attempt_id is not None:
            raise ValidationError(_("You have answered this question already."), code="answered")
        result = practice_answer(
            learner=learner,
            question=question,
            answer=answer,
            source=MasteryEvidence.Source.TUTOR,
        )
        Message.objects.filter(pk=reply.pk).update(check_attempt=result.attempt)
    return result


# --- memory --------------------------------------------------------------------------


def _memory_send(conversation_id: int) -> None:
    from tutor.conversation_tasks import memory_write

    # Not sent (the broker is away): the recovery sweep sends it once its lease lapses.
    enqueue_on_commit(memory_write, conversation_id)


def _enqueue_memory(conversation_id: int) -> None:
    """Ask for the conversation's memory: its job (``MemorySummary``) is made, or a failed
    one queued again, and its task sent on commit. One queued or being written already is
    left to its task (and to the recovery sweep, should the task be lost)."""
    with transaction.atomic():
        job, created = MemorySummary.objects.get_or_create(
            conversation_id=conversation_id, defaults={"lease_until": queued_until()}
        )
        failed = MemorySummary.objects.filter(pk=job.pk, status=MemorySummary.Status.FAILED)
        if created or failed.requeue(attempts=0):
            _memory_send(conversation_id)


def conversation_end(*, conversation: Conversation, learner: User) -> None:
    """The learner is done with a conversation: queue the writing of its memory."""
    _check_owner(conversation, learner)
    if conversation.summarized_at is None and conversation.messages.exists():
        _enqueue_memory(conversation.pk)


def memory_write(*, conversation_id: int) -> Memory | None:
    """Summarise a conversation into a memory, once. Called by the task; claims the
    conversation's ``MemorySummary`` job, so a redelivered task does nothing, and holds
    its lease while the summary is written."""
    from tutor.replies import conversation_summarize

    job = MemorySummary.objects.filter(conversation_id=conversation_id).first()
    if job is None:
        # A task sent before the summaries were jobs: its conversation gets a job now,
        # unless it was summarised then.
        if not Conversation.objects.filter(pk=conversation_id, summarized_at=None).exists():
            return None
        job, _created = MemorySummary.objects.get_or_create(conversation_id=conversation_id)
    claim = MemorySummary.objects.claim(job.pk)
    if claim is None:
        return None  # written, being written, or failed for good
    conversation = (
        Conversation.objects.select_related("course", "learner").filter(pk=conversation_id).first()
    )
    if conversation is None:
        return None
    try:
        with claim.lease():
            summary = conversation_summarize(conversation=conversation)
    except Exception as error:
        # Failed: the conversation's next end queues it again.
        claim.fail(error=repr(error))
        raise
    now = timezone.now()
    with transaction.atomic():
        if not claim.finish(status=MemorySummary.Status.DONE, finished_at=now, error=""):
            return None  # another worker took it over meanwhile
        Conversation.objects.filter(pk=conversation_id).update(summarized_at=now)
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


def memory_summaries_recover() -> int:
    """Send again the memory summaries whose task message was lost or whose worker died
    (those that killed their workers too often fail); returns how many were sent."""

    def send(pk: int) -> None:
        _memory_send(MemorySummary.objects.values_list("conversation_id", flat=True).get(pk=pk))

    return MemorySummary.objects.recover(send=send).requeued


def memory_delete(*, memory: Memory, learner: User) -> None:
    if memory.learner_id != learner.pk:
        raise PermissionDenied("This memory belongs to someone else.")
    memory.delete()


def memories_delete_all(*, course: Course, learner: User) -> int:
    deleted, _per_model = Memory.objects.filter(course=course, learner=learner).delete()
    return deleted
