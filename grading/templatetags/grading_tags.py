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


@register.inclusion_tag("grading/_todo.html", takes_context=True)
def learner_todo(context: template.Context) -> dict:
    """The home page's to-do of essays, released grades and unread notices."""
    from django.utils import timezone

    from grading.todo import learner_todo as todo_for

    return {"todo": todo_for(learner=context["request"].user), "now": timezone.now()}
