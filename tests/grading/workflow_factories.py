"""Rows and helpers for the grading workflow tests (imported by those test modules)."""

from __future__ import annotations

import pytest

RUBRIC = {
    "criteria": [
        {
            "name": "Argument",
            "min": 0,
            "max": 4,
            "step": 1,
            "levels": {"0": "No argument", "4": "A clear, well-supported argument"},
        },
        {"name": "Conventions", "min": 0, "max": 2, "step": 0.5},
    ]
}

ESSAY = (
    "Photosynthesis turns light energy into chemical energy stored in sugar.\n\n"
    "Plants need carbon dioxide and water, and they release oxygen as a by-product. "
    "Without photosynthesis most life on Earth would lack food."
)


def grade_reply(assignment, *, scores=(3, 1.5), confidence=0.9, quotes=None) -> dict:
    """An LLM answer for ``assignment`` in the schema the grader asks for."""
    criteria = list(assignment.criteria.all())
    quotes = quotes if quotes is not None else ["light energy into chemical energy"]
    return {
        "criteria": {
            f"criterion_{criterion.pk}": {
                "score": score,
                "rationale": f"Rationale for {criterion.name}.",
                "evidence": list(quotes),
                "confidence": confidence,
            }
            for criterion, score in zip(criteria, scores, strict=True)
        },
        "feedback": {
            "strengths": ["You explain the energy change clearly."],
            "next_steps": ["Add an example from an experiment."],
        },
        "grader_directed": [],
    }


@pytest.fixture
def assignment(course):
    from grading.rubrics import assignment_create

    return assignment_create(
        course=course, title="Why photosynthesis matters", prompt="Explain.", rubric=RUBRIC
    )


@pytest.fixture
def submit(assignment):
    from grading.submissions import submission_submit

    def submit(learner, text: str = ESSAY, *, to=None):
        return submission_submit(assignment=to or assignment, learner=learner, text=text)

    return submit


def grading_route_ids(*, course, student) -> dict[str, int]:
    """Rows the authorization matrix needs to fill grading routes: an assignment of the
    course, its first criterion, and the student's submission."""
    from grading.rubrics import assignment_create
    from grading.submissions import submission_submit

    assignment = assignment_create(course=course, title="Matrix essay", rubric=RUBRIC)
    submission = submission_submit(assignment=assignment, learner=student, text=ESSAY)
    return {
        "assignment_id": assignment.pk,
        "criterion_id": assignment.criteria.first().pk,
        "submission_id": submission.pk,
    }


def confirm_graded_essays(assignment, make_user, enrol, course, *, count=12, first=0) -> list:
    """``count`` submissions (of learners ``first``, ``first`` + 1, ...) with
    teacher-confirmed scores on both criteria."""
    from decimal import Decimal

    from grading import reviews
    from grading.models import CriterionScore
    from grading.submissions import submission_submit

    words = ["plants", "light", "energy", "sugar", "oxygen", "water", "carbon", "leaves"]
    argument, conventions = assignment.criteria.all()
    submissions = []
    for index in range(first, first + count):
        learner = make_user(f"learner{index}")
        enrol(learner, course, "student")
        quality = index % 5
        text = " ".join(words[: 2 + quality * 2]) + ". " + "More detail here. " * quality
        submission = submission_submit(assignment=assignment, learner=learner, text=text)
        CriterionScore.objects.create(submission=submission, criterion=argument, score=quality)
        CriterionScore.objects.create(
            submission=submission, criterion=conventions, score=Decimal(quality % 3) / 2 + 1
        )
        reviews.review_refresh(submission=submission, decided=True)
        submissions.append(submission)
    return submissions
