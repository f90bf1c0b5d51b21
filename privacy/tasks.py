"""Thin Celery tasks of the privacy app. The task keeps the name it had in
``learners.privacy_tasks``: queued and scheduled messages name it."""

from __future__ import annotations

from celery import shared_task

from privacy.retention import retention_conversations_purge, retention_uploads_purge


@shared_task(name="learners.privacy_tasks.retention_purge")
def retention_purge() -> dict[str, int]:
    """Apply the retention periods; idempotent: a second run finds nothing past them."""
    return {
        "conversations": retention_conversations_purge(),
        "uploads": retention_uploads_purge(),
    }
