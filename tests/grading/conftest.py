"""Fixtures of the grading tests. The workflow's rows live in workflow_factories.py."""

from tests.grading.workflow_factories import assignment, submit  # noqa: F401
