"""The history of an essay's grade as sentences a teacher reads at a glance.

Each audited grade change (``AuditEvent`` rows written by ``grading.reviews``) becomes
one line such as "Argument: the AI proposed 3; Ms Lee set 4: “uses two sources”". No
internal ids, no arrows from nothing ("— → 4"): who did what, to which criterion, why.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth import get_user_model
from django.utils.translation import gettext as _

from grading.models import Proposal


@dataclass(frozen=True)
class HistoryLine:
    created_at: datetime
    text: str


def _source_name(source: str | None) -> str:
    if source == Proposal.Source.LLM:
        return _("the AI")
    if source == Proposal.Source.SCORER:
        return _("the learned scorer")
    return _("the proposal")


def _quoted(reason: str) -> str:
    return _("“%(reason)s”") % {"reason": reason.strip()}


def _score_line(event, actor: str) -> str:
    details = event.details or {}
    criterion = details.get("criterion") or ""
    before = (event.before or {}).get("score")
    after = (event.after or {}).get("score")
    proposed = details.get("proposed_score")
    source = _source_name(details.get("source"))
    decision = details.get("decision")
    values = {
        "criterion": criterion,
        "actor": actor,
        "source": source,
        "proposed": score_shown(proposed),
        "before": score_shown(before),
        "after": score_shown(after),
    }
    if decision == "approve":
        text = _("%(criterion)s: %(source)s proposed %(proposed)s; %(actor)s approved it") % values
    elif decision == "override" and before is None:
        text = (
            _("%(criterion)s: %(source)s proposed %(proposed)s; %(actor)s set %(after)s") % values
        )
    elif decision in ("override", "edit") and before is not None and before != after:
        text = _("%(criterion)s: %(actor)s changed %(before)s to %(after)s") % values
    elif decision == "grade" or before is None:
        text = _("%(criterion)s: %(actor)s gave %(after)s") % values
    else:
        text = _("%(criterion)s: %(actor)s kept %(after)s") % values
    if details.get("comment_changed"):
        text = _("%(line)s and edited the comment") % {"line": text}
    if event.reason:
        text = _("%(line)s: %(reason)s") % {"line": text, "reason": _quoted(event.reason)}
    return text


def score_shown(value) -> str:
    """A score without trailing zeros (3, 1.5); empty for no score (the ``score`` filter
    of the grading templates, and the numbers in history sentences)."""
    if value is None or value == "":
        return ""
    from grading.reviews import score_text

    try:
        return score_text(value)
    except (ArithmeticError, ValueError):
        return str(value)


def _bulk_line(event, actor: str) -> str:
    details = event.details or {}
    scores = ", ".join(
        _("%(criterion)s %(score)s") % {"criterion": name, "score": score_shown(score)}
        for name, score in (event.after or {}).items()
    )
    return _(
        "%(actor)s approved %(source)s's scores in bulk (every criterion at least "
        "%(confidence)s confident): %(scores)s"
    ) % {
        "actor": actor,
        "source": _source_name(details.get("source")),
        "confidence": f"{float(details.get('min_confidence', 0)):.2f}",
        "scores": scores,
    }


def history_lines(events) -> list[HistoryLine]:
    """Sentences for ``grade_history`` events, oldest first, with the actors' current
    display names (read in one query)."""
    events = list(events)
    actor_ids = {e.actor_id for e in events if e.actor_id is not None}
    names = {
        user.pk: str(user)
        for user in get_user_model()
        .objects.filter(pk__in=actor_ids)
        .only("pk", "username", "display_name", "first_name", "last_name")
    }
    lines = []
    for event in events:
        actor = names.get(event.actor_id) or event.actor_label or _("someone")
        if event.actor_id is None and event.actor_label in ("", "system"):
            actor = _("the system")
        decision = (event.details or {}).get("decision")
        if decision == "bulk_approve":
            text = _bulk_line(event, actor)
        elif decision == "release":
            if (event.before or {}).get("released"):
                text = _("%(actor)s released the changed grade to the student") % {"actor": actor}
            else:
                text = _("%(actor)s released the grade to the student") % {"actor": actor}
        elif decision == "feedback":
            text = _("%(actor)s edited the feedback for the student") % {"actor": actor}
        else:
            text = _score_line(event, actor)
        lines.append(HistoryLine(created_at=event.created_at, text=text))
    return lines
