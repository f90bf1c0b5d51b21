"""How a person's data is exported and erased.

The privacy registry (``config/privacy_registry.py``, filled by each app's
``privacy_rules.py``) names every model that holds personal data; ``tests/privacy`` fails
when a model with a foreign key to the user is missing from it. ``privacy_export`` and
``privacy_erase`` are driven by it, so a new table is exported and erased once it is
registered.

Released grades belong to the school's records: on erasure they move to a placeholder
account made for that one erasure (inactive, no password, no name), their essay text is
emptied and the AI proposals and regrade requests around them are deleted. A placeholder
rather than a nullable foreign key keeps ``Submission.learner`` non-null for every other
query, and one placeholder per erasure keeps two erased people's grades apart without
saying who they were.
"""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from typing import Any

from django.apps import apps
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction
from django.utils.translation import gettext as _

from config.privacy_registry import ALL_FIELDS, DETACH, REGISTRY
from grading.models import Proposal, RegradeRequest, Review, Submission, SubmissionVector
from learners.audit import audit_record
from learners.models import AuditEvent, LoginThrottle, User
from tutor.models import Message
from tutor.streams import reply_stream_reset, streams_reachable


def _model(label: str) -> type[models.Model]:
    return apps.get_model(label)


def _rows(label: str, *, user: User) -> models.QuerySet:
    rule = REGISTRY[label]
    return _model(label)._default_manager.filter(**{rule.owner or "pk": user.pk})


def file_fields(model: type[models.Model]) -> list[models.FileField]:
    return [f for f in model._meta.concrete_fields if isinstance(f, models.FileField)]


def _owned_files(*, user: User) -> list[tuple[str, models.fields.files.FieldFile]]:
    """Uploaded files on rows that belong to the person (not the school's detached rows)."""
    found = []
    for label, rule in REGISTRY.items():
        if rule.erase == DETACH:
            continue
        fields = file_fields(_model(label))
        for row in _rows(label, user=user) if fields else ():
            for f in fields:
                value = getattr(row, f.name)
                if value:
                    found.append((label, value))
    return found


def privacy_export(*, user: User, actor: User | None = None) -> bytes:
    """A zip of everything held about ``user``: one JSON file per group, plus their files."""
    groups: dict[str, dict[str, Any]] = {}
    for label, rule in REGISTRY.items():
        group = groups.setdefault(rule.group, {})
        if callable(rule.export):
            key = rule.export.__name__.lstrip("_")
            if key not in group:
                group[key] = rule.export(user)
        elif rule.export:
            fields = () if rule.export == ALL_FIELDS else rule.export
            group[label] = list(_rows(label, user=user).values(*fields))
    groups["audit"] = {
        "own_actions": list(
            AuditEvent.objects.filter(actor_id=user.pk).values(
                "created_at", "action", "target_type", "target_id", "reason"
            )
        )
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in groups.items():
            if any(data.values()):
                archive.writestr(f"{name}.json", json.dumps(data, cls=DjangoJSONEncoder, indent=2))
        for label, file in _owned_files(user=user):
            with file.open("rb") as handle:
                archive.writestr(f"files/{label}/{file.name}", handle.read())
    audit_record(
        action=AuditEvent.Action.DATA_EXPORTED,
        actor=actor or user,
        target=user,
        details={"groups": sorted(groups)},
    )
    return buffer.getvalue()


def _anonymous_placeholder() -> User:
    placeholder = User(username=f"erased-{uuid.uuid4().hex[:12]}", is_active=False)
    placeholder.set_unusable_password()
    placeholder.save()
    return placeholder


def _keep_released_grades(*, user: User) -> None:
    # Released once is released: a grade whose regrade is pending is back in the queue
    # (status "pending") but its released snapshot is still the school's record.
    released = Submission.objects.filter(learner=user, review__released__isnull=False)
    ids = list(released.values_list("pk", flat=True))
    if not ids:
        return
    Proposal.objects.filter(submission_id__in=ids).delete()
    RegradeRequest.objects.filter(submission_id__in=ids).delete()
    SubmissionVector.objects.filter(submission_id__in=ids).delete()
    # Flags quote the essay; the released snapshot and the scores are the grade itself.
    # The regrade went with its request, so the grade stands as it was released.
    Review.objects.filter(submission_id__in=ids).update(flags=[], status=Review.Status.RELEASED)
    Submission.objects.filter(pk__in=ids).update(learner=_anonymous_placeholder(), text="")


def _reply_stream_keys(*, user: User) -> list[int]:
    return list(Message.objects.filter(conversation__learner=user).values_list("pk", flat=True))


def _delete_outside_the_database(*, files: list, message_ids: list[int]) -> None:
    for file in files:
        file.storage.delete(file.name)
    for message_id in message_ids:
        reply_stream_reset(message_id=message_id)


class ErasureUnavailable(Exception):
    """Erasure cannot be completed now (the reply streams' Redis is away); nothing was
    erased. ``str()`` is for the person who asked."""


def privacy_erase_check() -> None:
    """Raise ``ErasureUnavailable`` unless everything an erasure touches answers now, so an
    erasure is never left half-done outside the database."""
    if not streams_reachable():
        raise ErasureUnavailable(
            _("Erasing is not possible right now; nothing was erased. Try again in a few minutes.")
        )


@transaction.atomic
def privacy_erase(*, user: User, actor: User | None) -> None:
    """Erase ``user`` everywhere; released grades stay, detached from them.

    Files and reply streams are removed once the transaction commits, so a failed erasure
    leaves nothing half-done; ``ErasureUnavailable`` (nothing erased) when Redis is away.
    The audit row names the actor only when it is someone else: a self-erasure's actor
    label would be the erased person's name.
    """
    privacy_erase_check()
    files = [file for _, file in _owned_files(user=user)]
    message_ids = _reply_stream_keys(user=user)
    _keep_released_grades(user=user)
    audit_record(
        action=AuditEvent.Action.ACCOUNT_ERASED,
        actor=None if actor is None or actor.pk == user.pk else actor,
        target=user,
        details={"self_service": actor is not None and actor.pk == user.pk},
    )
    # Failed sign-ins name the account by username, not by key: they go with it.
    LoginThrottle.objects.filter(username=user.username.strip().lower()).delete()
    # Every DELETE rule cascades from the user; DETACH rules are SET_NULL foreign keys.
    user.delete()
    transaction.on_commit(
        lambda: _delete_outside_the_database(files=files, message_ids=message_ids)
    )
