"""Celery tasks of tutoring conversations: thin, idempotent, on the ``llm`` queue.

Celery's thread pool (the ``llm`` worker) cannot enforce task time limits, so a reply
bounds its own time (``tutor.replies``), and a reply whose worker vanished (its lease
lapsed) is marked failed by the recovery sweep (``conversations.replies_recover``); the limits
below apply where a prefork worker runs the queue.
"""

from __future__ import annotations

from celery import shared_task

from tutor import conversations, replies

_REPLY_LIMIT = int(conversations.reply_max_seconds()) + 30


@shared_task(
    name="tutor.conversation_tasks.reply_write",
    acks_late=True,
    soft_time_limit=_REPLY_LIMIT,
    time_limit=_REPLY_LIMIT + 30,
)
def reply_write(message_id: int) -> str | None:
    """Write the reply ``message_id`` if it is still waiting; a redelivery does nothing."""
    claim = conversations.reply_claim(message_id=message_id)
    if claim is None:
        return None
    return replies.reply_write(claim=claim)


@shared_task(name="tutor.conversation_tasks.memory_write", acks_late=True)
def memory_write(conversation_id: int) -> int | None:
    memory = conversations.memory_write(conversation_id=conversation_id)
    return memory.pk if memory else None
