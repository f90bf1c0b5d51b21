"""Writing to the append-only audit log."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from learners.models import AuditEvent

if TYPE_CHECKING:
    from learners.models import User


def audit_record(
    *,
    action: str,
    actor: User | None,
    target: Any,
    before: dict | None = None,
    after: dict | None = None,
    reason: str = "",
    course_id: int | None = None,
    details: dict | None = None,
) -> AuditEvent:
    """Append one event. ``actor`` may be None for the system itself."""
    return AuditEvent.objects.create(
        action=action,
        actor_id=getattr(actor, "pk", None),
        actor_label=str(actor) if actor is not None else "system",
        course_id=course_id,
        target_type=target._meta.label_lower if hasattr(target, "_meta") else type(target).__name__,
        target_id=str(getattr(target, "pk", target)),
        before=before,
        after=after,
        reason=reason,
        details=details or {},
    )
