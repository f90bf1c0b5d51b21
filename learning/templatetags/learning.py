"""Template tags of the learner model for pages it does not own (home)."""

from __future__ import annotations

from django import template

from learners.profiles import profile_is_onboarded
from learning.review import reviews_due

register = template.Library()


@register.inclusion_tag("learners/_learning_home.html", takes_context=True)
def learning_home(context: template.Context) -> dict:
    """The onboarding invitation (until the profile is saved) and today's due reviews."""
    request = context["request"]
    onboarded = context.get("learner_onboarded")
    if onboarded is None:  # the context processor is not installed
        onboarded = profile_is_onboarded(user=request.user)
    return {
        "learner_onboarded": onboarded,
        "due_reviews": list(reviews_due(learner=request.user)[:10]),
    }
