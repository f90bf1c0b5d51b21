"""Rows a tutoring conversation route needs, for access tests (and the authorization
matrix): the student's conversation with a finished reply, and a memory."""

from __future__ import annotations


def conversation_route_ids(*, course, student) -> dict[str, int]:
    """Ids for ``conversation_id``, ``message_id`` and ``memory_id`` owned by ``student``."""
    from tutor.models import Conversation, Memory, Message

    conversation = Conversation.objects.create(course=course, learner=student, title="Q")
    Message.objects.create(conversation=conversation, role="user", text="Q")
    reply = Message.objects.create(
        conversation=conversation, role="assistant", text="A [1].", status="done"
    )
    memory = Memory.objects.create(learner=student, course=course, summary="Asked about Q.")
    return {"conversation_id": conversation.pk, "message_id": reply.pk, "memory_id": memory.pk}
