"""Fixtures for the learner-model tests (tests/learning and the pages that show learning)."""

from __future__ import annotations

import pytest

MIDDLEWARE = "learners.profiles.PreferredLanguageMiddleware"
CONTEXT_PROCESSOR = "learners.profiles.learner_preferences"


@pytest.fixture
def learning_settings(settings):
    """The middleware and context processor that settings.py should list; a no-op once it
    does."""
    if MIDDLEWARE not in settings.MIDDLEWARE:
        middleware = list(settings.MIDDLEWARE)
        at = middleware.index("django.contrib.auth.middleware.AuthenticationMiddleware") + 1
        middleware.insert(at, MIDDLEWARE)
        settings.MIDDLEWARE = middleware
    processors = settings.TEMPLATES[0]["OPTIONS"]["context_processors"]
    if CONTEXT_PROCESSOR not in processors:
        templates = [dict(settings.TEMPLATES[0])]
        templates[0]["OPTIONS"] = {
            **templates[0]["OPTIONS"],
            "context_processors": [*processors, CONTEXT_PROCESSOR],
        }
        settings.TEMPLATES = templates
    return settings


@pytest.fixture
def make_concept(db, course):
    from learners.models import Concept

    def make(name: str, *, course=course, description: str = "", prerequisites=()):
        concept = Concept.objects.create(course=course, name=name, description=description)
        concept.prerequisites.set(prerequisites)
        return concept

    return make


@pytest.fixture
def make_question(db):
    from learning.models import PracticeQuestion

    def make(concept, *, prompt: str | None = None, answers=("glucose",), kind="cloze", **fields):
        fields.setdefault("status", PracticeQuestion.Status.APPROVED)
        fields.setdefault("origin", PracticeQuestion.Origin.TEACHER)
        return PracticeQuestion.objects.create(
            concept=concept,
            kind=kind,
            prompt=prompt
            or f"Plants make _____ ({concept.name} {PracticeQuestion.objects.count()})",
            answers=list(answers),
            explanation="Photosynthesis makes glucose from light, water and carbon dioxide.",
            **fields,
        )

    return make


PHOTOSYNTHESIS = (
    "Photosynthesis is the process by which green plants turn light energy into chemical "
    "energy stored in glucose. It takes place in the chloroplasts of leaf cells. "
    "Chlorophyll is the green pigment that absorbs red and blue light. "
    "The light-dependent reactions split water and release oxygen as a by-product. "
    "The Calvin cycle uses carbon dioxide from the air to build sugars. "
    "Why do leaves change colour in autumn?"
)
