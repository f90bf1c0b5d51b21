"""Evidence of what a learner knows, and the mastery estimates it moves.

Every answer on a concept (practice, spaced review, the tutor's check questions, graded
rubric criteria) is recorded with ``mastery_evidence_record``; the learner's state in the
course moves by one incremental update of the course's mastery model (``learning.mastery``)
and the estimates of the concepts they have evidence on are stored for the pages.

A course uses the parameters fitted on its own response log once it has enough answers
(``mastery_course_fit``, run by a task); until then a default model.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction

from learners.models import Concept, Course, User
from learning import mastery
from learning.models import ConceptMastery, CourseMasteryModel, LearnerCourseState, MasteryEvidence

# A course's own fit replaces the default once its log has this many answers.
MIN_RESPONSES_TO_FIT = 200
DEFAULT_PRIOR = 0.5


def _default_model(skill_ids: Iterable[str]) -> mastery.MasteryModel:
    """Elo with neutral difficulties: needs no training data and moves from the first
    answer (Pelánek's defaults)."""
    return mastery.Elo(
        prior=DEFAULT_PRIOR,
        skills=dict.fromkeys(skill_ids, DEFAULT_PRIOR),
        difficulty={},
        rate=0.7,
        decay=0.03,
        skill_rate=0.7,
    )


def mastery_model_for(*, course: Course) -> mastery.MasteryModel:
    """The course's fitted model, or the default; every concept of the course is known to
    it (one the fit never saw starts from the course's overall share of correct answers)."""
    skill_ids = [
        str(pk) for pk in Concept.objects.filter(course=course).values_list("pk", flat=True)
    ]
    fitted = (
        CourseMasteryModel.objects.filter(course=course).values_list("params", flat=True).first()
    )
    if fitted is None:
        return _default_model(skill_ids)
    model = mastery.mastery_model_load(data=fitted)
    for skill_id in skill_ids:
        model.skills.setdefault(skill_id, model.prior)
    return model


def _store_estimates(
    *, learner: User, model: mastery.MasteryModel, state: mastery.LearnerState
) -> None:
    rows = []
    for skill_id in state.skills:
        estimate = model.predict(state, skill_id=skill_id)
        rows.append(
            ConceptMastery(
                learner=learner,
                concept_id=int(skill_id),
                probability=estimate.probability,
                attempts=estimate.attempts,
                enough_data=estimate.enough_data,
            )
        )
    ConceptMastery.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["learner", "concept"],
        update_fields=["probability", "attempts", "enough_data", "updated_at"],
    )


@transaction.atomic
def mastery_evidence_record(
    *, learner: User, concept: Concept, correct: bool, source: str
) -> ConceptMastery:
    """Record one answer on ``concept`` and update the learner's estimates; returns the
    concept's new estimate. ``source`` is a ``MasteryEvidence.Source`` value."""
    if source not in MasteryEvidence.Source.values:
        raise ValueError(f"unknown evidence source {source!r}")
    MasteryEvidence.objects.create(
        learner=learner, concept=concept, correct=bool(correct), source=source
    )
    row, _created = LearnerCourseState.objects.select_for_update().get_or_create(
        learner=learner, course_id=concept.course_id
    )
    state = mastery.LearnerState.from_dict(row.state) if row.state else mastery.LearnerState()
    model = mastery_model_for(course=concept.course)
    model.update(state, skill_id=concept.skill_id, correct=int(bool(correct)))
    row.state = state.to_dict()
    row.save(update_fields=["state", "updated_at"])
    _store_estimates(learner=learner, model=model, state=state)
    return ConceptMastery.objects.get(learner=learner, concept=concept)


def _course_responses(*, course: Course) -> list[mastery.Response]:
    rows = (
        MasteryEvidence.objects.filter(concept__course=course)
        .order_by("created_at", "id")
        .values_list("learner_id", "concept_id", "correct")
    )
    return [mastery.Response(str(learner), str(concept), int(c)) for learner, concept, c in rows]


@transaction.atomic
def mastery_course_fit(*, course: Course) -> CourseMasteryModel | None:
    """Fit the course's model on its response log and replay every learner's evidence
    through it; None (the default model stays) while the log is too small or one-sided."""
    responses = _course_responses(course=course)
    if len(responses) < MIN_RESPONSES_TO_FIT or len({r.correct for r in responses}) < 2:
        return None
    model = mastery.mastery_model_fit(responses=responses)
    fitted, _created = CourseMasteryModel.objects.update_or_create(
        course=course, defaults={"params": model.to_dict(), "responses": len(responses)}
    )
    model = mastery_model_for(course=course)
    states: dict[str, mastery.LearnerState] = {}
    for r in responses:
        model.update(
            states.setdefault(r.student_id, mastery.LearnerState()),
            skill_id=r.skill_id,
            correct=r.correct,
        )
    learners = User.objects.in_bulk([int(pk) for pk in states])
    for learner_id, state in states.items():
        learner = learners[int(learner_id)]
        LearnerCourseState.objects.update_or_create(
            learner=learner, course=course, defaults={"state": state.to_dict()}
        )
        _store_estimates(learner=learner, model=model, state=state)
    return fitted
