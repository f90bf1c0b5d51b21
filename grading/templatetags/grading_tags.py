"""Template filters of the grading pages."""

from __future__ import annotations

from django import template

from grading.history import score_shown

register = template.Library()
register.filter("score", score_shown)


@register.inclusion_tag("grading/_todo.html", takes_context=True)
def learner_todo(context: template.Context) -> dict:
    """The home page's to-do of essays, released grades and unread notices."""
    from django.utils import timezone

    from grading.todo import learner_todo as todo_for

    return {"todo": todo_for(learner=context["request"].user), "now": timezone.now()}
