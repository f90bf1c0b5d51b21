"""Read use cases of tutoring conversations. A conversation is its learner's alone."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.contrib.postgres.expressions import ArraySubquery
from django.db.models import OuterRef, Prefetch, QuerySet
from django.shortcuts import get_object_or_404

from learners.models import Course
from learning.progress import weakest_concept_rows
from tutor.models import Conversation, Feedback, Memory, Message

if TYPE_CHECKING:
    from learners.models import User


MEMORIES_IN_CONTEXT = 3
WEAK_CONCEPTS_IN_CONTEXT = 3


def conversations_of_learner(*, user: User, course: Course) -> QuerySet[Conversation]:
    return Conversation.objects.filter(learner=user, course=course)


def conversation_for_learner(*, user: User, course: Course, conversation_id: int) -> Conversation:
    """The learner's own conversation in the course; 404 for anyone else's. It knows its
    course already (no second query for it)."""
    conversation = get_object_or_404(
        conversations_of_learner(user=user, course=course), pk=conversation_id
    )
    conversation.course = course
    return conversation


def conversation_of_member(*, user: User, course_id: int, conversation_id: int) -> Conversation:
    """The learner's own conversation in a course they may open (``Course.visible_to``),
    with its course, in one query; 404 otherwise (as ``course_for_member`` and
    ``conversation_for_learner`` one after the other, which take two)."""
    return get_object_or_404(
        Conversation.objects.select_related("course").filter(
            learner=user, course__in=Course.objects.visible_to(user)
        ),
        pk=conversation_id,
        course_id=course_id,
    )


def conversation_latest(*, user: User, course: Course) -> Conversation | None:
    return conversations_of_learner(user=user, course=course).first()


def conversation_messages(*, conversation: Conversation) -> QuerySet[Message]:
    return conversation.messages.select_related(
        "feedback", "check_question", "check_attempt"
    ).order_by("pk")


def reply_for_learner(*, user: User, course: Course, message_id: int) -> Message:
    """One of the learner's tutor replies in the course; 404 otherwise."""
    return get_object_or_404(
        Message.objects.select_related("conversation"),
        pk=message_id,
        role=Message.Role.ASSISTANT,
        conversation__learner=user,
        conversation__course=course,
    )


async def reply_for_learner_async(*, user: User, course_id: int, message_id: int) -> Message | None:
    """As ``reply_for_learner`` for async views, in one query that also asks whether the
    user may still open the course (``Course.visible_to``); None if not."""
    return (
        await Message.objects.filter(
            pk=message_id,
            role=Message.Role.ASSISTANT,
            conversation__learner_id=user.pk,
            conversation__course_id=course_id,
            conversation__course__in=Course.objects.visible_to(user),
        )
        .only("pk", "status", "conversation_id")
        .afirst()
    )


def reply_turns(*, reply: Message) -> tuple[Message | None, list[Message]]:
    """What a tutor reply answers, in one query: the student's message just before it
    (None when there is none), and the turns before that message, oldest first, with
    failed and empty replies left out."""
    earlier = list(
        Message.objects.filter(conversation_id=reply.conversation_id, pk__lt=reply.pk).order_by(
            "pk"
        )
    )
    for at in reversed(range(len(earlier))):
        if earlier[at].role == Message.Role.USER:
            history = [
                m
                for m in earlier[:at]
                if (m.text.strip() or m.image) and m.status != Message.Status.FAILED
            ]
            return earlier[at], history
    return None, []


def memories_of_learner(*, user: User | OuterRef, course: Course | OuterRef) -> QuerySet[Memory]:
    """The learner's memories in the course, newest first (``OuterRef``s in a subquery)."""
    return Memory.objects.filter(learner=user, course=course)


@dataclass(frozen=True)
class ReplyForWriting:
    """A tutor reply to write, and what its prompt says of the learner beyond their profile:
    the names of their weakest concepts in the course and the newest summaries of their
    other sessions there, newest first."""

    reply: Message
    weak_concepts: list[str]
    memories: list[str]


def reply_for_writing(*, message_id: int) -> ReplyForWriting:
    """A tutor reply with everything its prompt reads of the learner, in one query: its
    conversation, course, learner and the learner's profile (``learner.learner_profile``
    raises ``DoesNotExist`` when they never filled it in), their weakest concepts
    (``learning.progress.weakest_concept_rows``, at most ``WEAK_CONCEPTS_IN_CONTEXT``) and
    memories (at most ``MEMORIES_IN_CONTEXT``). ``Message.DoesNotExist`` when it is gone."""
    learner = OuterRef("conversation__learner_id")
    course = OuterRef("conversation__course_id")
    weakest = weakest_concept_rows(learner=learner, course=course)
    memories = memories_of_learner(user=learner, course=course).exclude(
        conversation_id=OuterRef("conversation_id")
    )
    reply = (
        Message.objects.select_related(
            "conversation__course", "conversation__learner__learner_profile"
        )
        .annotate(
            weak_concept_names=ArraySubquery(
                weakest.values("concept__name")[:WEAK_CONCEPTS_IN_CONTEXT]
            ),
            memory_summaries=ArraySubquery(memories.values("summary")[:MEMORIES_IN_CONTEXT]),
        )
        .get(pk=message_id)
    )
    return ReplyForWriting(
        reply=reply,
        weak_concepts=reply.weak_concept_names,
        memories=reply.memory_summaries,
    )


def preference_records(*, course: Course | None = None) -> Iterator[dict[str, Any]]:
    """Rated replies as preference data: the conversation up to the reply, the reply, the
    rating and comment. Nothing that identifies the learner is included."""
    feedback = Feedback.objects.select_related("message__conversation").order_by("pk")
    if course is not None:
        feedback = feedback.filter(message__conversation__course=course)
    conversations = (
        Conversation.objects.filter(pk__in=feedback.values("message__conversation_id"))
        .prefetch_related(
            Prefetch("messages", queryset=Message.objects.order_by("pk"), to_attr="ordered")
        )
        .in_bulk()
    )
    for item in feedback.iterator(chunk_size=500):
        reply = item.message
        earlier = [
            m
            for m in conversations[reply.conversation_id].ordered
            if m.pk < reply.pk and m.text.strip() and m.status != Message.Status.FAILED
        ]
        yield {
            "message_id": reply.pk,
            "course_id": reply.conversation.course_id,
            "prompt": [{"role": m.role, "content": m.text} for m in earlier],
            "reply": reply.text,
            "rating": item.rating,
            "comment": item.comment,
            "status": reply.status,
            "model": reply.model,
            "prompt_version": reply.prompt_version,
            "citations": reply.citations,
            "rated_at": item.updated.isoformat(),
        }
