"""Fixtures of the learner-model tests live in learning_fixtures.py."""

from tests.learning.learning_fixtures import (  # noqa: F401
    learning_settings,
    make_concept,
    make_question,
)
