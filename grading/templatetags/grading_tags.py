"""Template filters of the grading pages."""

from __future__ import annotations

from django import template

from grading.services import score_text

register = template.Library()


@register.filter
def score(value) -> str:
    """A score without trailing zeros (3, 1.5); empty for no score."""
    if value is None or value == "":
        return ""
    try:
        return score_text(value)
    except (ArithmeticError, ValueError):
        return str(value)
