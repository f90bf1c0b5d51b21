"""Rubrics: an assignment's criteria parsed from the teacher's JSON, created with the
assignment and exported again."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from grading.models import (
    Assignment,
    Exemplar,
    RubricCriterion,
)

if TYPE_CHECKING:
    from learners.models import Course


@dataclass(frozen=True)
class CriterionSpec:
    name: str
    min_score: Decimal
    max_score: Decimal
    step: Decimal
    level_descriptors: dict[str, str]


def _decimal(value: Any, *, field: str, name: str) -> Decimal:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise ValidationError(
            _("Criterion “%(name)s”: %(field)s must be a number.") % {"name": name, "field": field}
        ) from None
    if not number.is_finite():
        raise ValidationError(
            _("Criterion “%(name)s”: %(field)s must be a number.") % {"name": name, "field": field}
        )
    return number


def rubric_parse(*, data: Any) -> tuple[list[CriterionSpec], list[dict]]:
    """Criteria and exemplars from rubric JSON, with a clear message for what is wrong.

    Format: ``{"criteria": [{"name", "min", "max", "step", "levels": {"<score>": "..."}}],
    "exemplars": [{"text", "scores": {"<criterion name>": score}}]}``.
    """
    if not isinstance(data, dict) or not isinstance(data.get("criteria"), list):
        raise ValidationError(_("The rubric needs a list of criteria."))
    if not data["criteria"]:
        raise ValidationError(_("The rubric has no criteria: add at least one."))
    specs: list[CriterionSpec] = []
    for index, entry in enumerate(data["criteria"], start=1):
        if not isinstance(entry, dict):
            raise ValidationError(_("Criterion %(n)d is not an object.") % {"n": index})
        name = str(entry.get("name") or "").strip()
        if not name:
            raise ValidationError(_("Criterion %(n)d has no name.") % {"n": index})
        if len(name) > 100:
            raise ValidationError(_("Criterion %(n)d's name is too long.") % {"n": index})
        low = _decimal(entry.get("min", 0), field="min", name=name)
        high = _decimal(entry.get("max"), field="max", name=name)
        step = _decimal(entry.get("step", 1), field="step", name=name)
        if low < 0 or high < 0:
            raise ValidationError(
                _("Criterion “%(name)s”: points cannot be negative.") % {"name": name}
            )
        if high <= low:
            raise ValidationError(
                _("Criterion “%(name)s”: the highest score must be above the lowest.")
                % {"name": name}
            )
        if step <= 0:
            raise ValidationError(
                _("Criterion “%(name)s”: the step must be positive.") % {"name": name}
            )
        if (high - low) % step:
            raise ValidationError(
                _("Criterion “%(name)s”: the range must be a whole number of steps.")
                % {"name": name}
            )
        if max(abs(low), abs(high)) >= 10_000:
            raise ValidationError(_("Criterion “%(name)s”: too many points.") % {"name": name})
        levels = entry.get("levels") or entry.get("level_descriptors") or {}
        if not isinstance(levels, dict):
            raise ValidationError(
                _("Criterion “%(name)s”: levels must map scores to descriptions.") % {"name": name}
            )
        specs.append(
            CriterionSpec(
                name=name,
                min_score=low,
                max_score=high,
                step=step,
                level_descriptors={str(k): str(v) for k, v in levels.items()},
            )
        )
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        raise ValidationError(_("Two criteria have the same name."))
    exemplars = data.get("exemplars") or []
    if not isinstance(exemplars, list):
        raise ValidationError(_("Exemplars must be a list."))
    checked: list[dict] = []
    for index, exemplar in enumerate(exemplars, start=1):
        if not isinstance(exemplar, dict) or not str(exemplar.get("text") or "").strip():
            raise ValidationError(_("Exemplar %(n)d has no text.") % {"n": index})
        scores = exemplar.get("scores") or {}
        if not isinstance(scores, dict) or set(scores) - set(names):
            raise ValidationError(
                _("Exemplar %(n)d scores criteria the rubric does not have.") % {"n": index}
            )
        checked.append({"text": str(exemplar["text"]), "scores": scores})
    return specs, checked


@transaction.atomic
def assignment_create(
    *,
    course: Course,
    title: str,
    prompt: str = "",
    due_at=None,
    resubmission_policy: str = Assignment.ResubmissionPolicy.UNTIL_DUE,
    rubric: Any,
) -> Assignment:
    specs, exemplars = rubric_parse(data=rubric)
    if not title.strip():
        raise ValidationError(_("The assignment needs a title."))
    assignment = Assignment.objects.create(
        course=course,
        title=title.strip(),
        prompt=prompt,
        due_at=due_at,
        resubmission_policy=resubmission_policy,
    )
    RubricCriterion.objects.bulk_create(
        RubricCriterion(
            assignment=assignment,
            position=position,
            name=spec.name,
            min_score=spec.min_score,
            max_score=spec.max_score,
            step=spec.step,
            level_descriptors=spec.level_descriptors,
        )
        for position, spec in enumerate(specs)
    )
    Exemplar.objects.bulk_create(
        Exemplar(assignment=assignment, text=e["text"], scores=e["scores"], position=position)
        for position, e in enumerate(exemplars)
    )
    return assignment


def rubric_export(*, assignment: Assignment) -> dict[str, Any]:
    """The rubric as JSON that ``rubric_parse`` reads back."""
    return {
        "title": assignment.title,
        "prompt": assignment.prompt,
        "criteria": [
            {
                "name": c.name,
                "min": float(c.min_score),
                "max": float(c.max_score),
                "step": float(c.step),
                "levels": c.level_descriptors,
            }
            for c in assignment.criteria.all()
        ],
        "exemplars": [{"text": e.text, "scores": e.scores} for e in assignment.exemplars.all()],
    }
