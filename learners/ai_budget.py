"""Each learner's daily token budget for AI features, per course.

A learner's tokens today in a course are the prompt and completion tokens the language
model reported for their tutor replies, for the memories written from their conversations
and for the AI grade proposals of their essays, since local midnight (``TIME_ZONE``).
Offline replies and the learned scorer use none. The budget is the course's own
(``Course.ai_daily_token_budget``) or the site's ``AI_DAILY_TOKEN_BUDGET``. Once it is
used up the tutor takes no new message until tomorrow and essays go to the teacher without
an AI proposal; in offline mode nothing is limited, since nothing costs tokens.

The check runs before a call, and a call's tokens are known only after it: a learner may
end a day somewhat over the budget, never far over it.
"""

from __future__ import annotations

import dataclasses
import datetime

from django.core.exceptions import ValidationError
from django.db.models import IntegerField, QuerySet, Sum, Value
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Coalesce
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from learners.models import Course

BUDGET_REACHED = _(
    "You have reached today's limit for AI help in this course. It starts again at "
    "midnight; please try again tomorrow."
)
GRADED_WITHOUT_AI = _(
    "You have reached today's limit for AI help in this course, so your teacher will grade "
    "this essay without an AI suggestion."
)


@dataclasses.dataclass(frozen=True)
class AIBudget:
    used: int
    limit: int | None  # None: no limit

    @property
    def reached(self) -> bool:
        return self.limit is not None and self.used >= self.limit


def _day_start() -> datetime.datetime:
    return timezone.make_aware(datetime.datetime.combine(timezone.localdate(), datetime.time()))


def ai_budget_resets_in() -> int:
    """Seconds until the budgets start again (local midnight)."""
    tomorrow = _day_start() + datetime.timedelta(days=1)
    return max(1, int((tomorrow - timezone.now()).total_seconds()))


def _tokens(rows: QuerySet, prompt, completion) -> int:
    total = rows.aggregate(tokens=Sum(Coalesce(prompt, Value(0)) + Coalesce(completion, Value(0))))[
        "tokens"
    ]
    return total or 0


def _usage_tokens(rows: QuerySet) -> int:
    """Tokens of rows that keep the LLM's usage record in a ``usage`` JSON field."""
    return _tokens(
        rows,
        Cast(KT("usage__prompt_tokens"), IntegerField()),
        Cast(KT("usage__completion_tokens"), IntegerField()),
    )


def ai_tokens_used_today(*, user, course: Course) -> int:
    """The tokens the learner's AI features used in the course since local midnight."""
    from grading.models import Proposal
    from tutor.models import Memory, Message

    since = _day_start()
    replies = Message.objects.filter(
        conversation__learner=user,
        conversation__course=course,
        role=Message.Role.ASSISTANT,
        created__gte=since,
    )
    memories = Memory.objects.filter(learner=user, course=course, created__gte=since)
    proposals = Proposal.objects.filter(
        submission__learner=user,
        submission__assignment__course=course,
        source=Proposal.Source.LLM,
        created_at__gte=since,
    )
    return (
        _tokens(replies, "prompt_tokens", "completion_tokens")
        + _usage_tokens(memories)
        + _usage_tokens(proposals)
    )


def ai_budget(*, user, course: Course) -> AIBudget:
    """The learner's budget in the course and what is used of it today (not counted when
    there is no limit)."""
    limit = course.ai_token_budget
    if limit is None:
        return AIBudget(used=0, limit=None)
    return AIBudget(used=ai_tokens_used_today(user=user, course=course), limit=limit)


def ai_budget_reached(*, user, course: Course) -> bool:
    """Whether a new call to the language model for this learner must wait for tomorrow;
    never in offline mode."""
    from tutor.llm import llm_is_configured  # the tutor app owns the model client

    return llm_is_configured() and ai_budget(user=user, course=course).reached


def ai_budget_check(*, user, course: Course) -> None:
    """ValidationError (code ``ai_budget``) when the learner's budget is used up."""
    if ai_budget_reached(user=user, course=course):
        raise ValidationError(BUDGET_REACHED, code="ai_budget")
