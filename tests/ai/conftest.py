"""Fixtures of the ledger tests: a graded assignment and concepts for practice questions."""

from tests.grading.workflow_factories import assignment, submit  # noqa: F401
from tests.learning.learning_fixtures import learning_settings, make_concept  # noqa: F401
