"""Thin Celery tasks of the privacy module (listed in ``app.conf.include``, since Celery
autodiscovers only ``tasks.py``)."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="learners.privacy_tasks.retention_purge")
def retention_purge() -> dict[str, int]:
    """Apply the retention periods; idempotent: a second run finds nothing past them."""
    from learners.retention import retention_conversations_purge, retention_uploads_purge

    return {
        "conversations": retention_conversations_purge(),
        "uploads": retention_uploads_purge(),
    }
