"""Each learner's daily token budget for AI features, per course.

A learner's tokens today in a course are the tokens of every call to the language model
made for them in that course since local midnight (``TIME_ZONE``), read from the ledger
(``ai.models.LLMCall``): tutor replies, the memories written from their conversations,
the AI grade proposals of their essays, and anything else recorded with them as its
person. A call's tokens are its prompt plus completion tokens (``LLMCall.tokens``), the
same count the usage page and the metrics use; a failed call counts what it used.
Offline replies and the learned scorer make no call. The budget is the course's own
(``Course.ai_daily_token_budget``) or the site's ``AI_DAILY_TOKEN_BUDGET``. Once it is used
up the tutor takes no new message until tomorrow and essays go to the teacher without an
AI proposal; in offline mode nothing is limited, since nothing costs tokens.

The check runs before a call, and a call's tokens are known only after it: a learner may
end a day somewhat over the budget, never far over it.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import F, QuerySet, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ai.models import LLMCall

if TYPE_CHECKING:
    from learners.models import Course, User

BUDGET_REACHED = _(
    "You have reached today's limit for AI help in this course. It starts again at "
    "midnight; please try again tomorrow."
)
GRADED_WITHOUT_AI = _(
    "You have reached today's limit for AI help in this course, so your teacher will grade "
    "this essay without an AI suggestion."
)

# A call's tokens in SQL: LLMCall.tokens, for sums over many rows.
CALL_TOKENS = Coalesce(F("prompt_tokens"), Value(0)) + Coalesce(F("completion_tokens"), Value(0))


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


def calls_tokens(calls: QuerySet[LLMCall]) -> int:
    """The tokens of the ledger rows ``calls``."""
    return calls.aggregate(tokens=Sum(CALL_TOKENS))["tokens"] or 0


def ai_tokens_used_today(*, user: User, course: Course) -> int:
    """The tokens the learner's AI features used in the course since local midnight."""
    return calls_tokens(
        LLMCall.objects.filter(user=user, course=course, created_at__gte=_day_start())
    )


def ai_budget(*, user: User, course: Course) -> AIBudget:
    """The learner's budget in the course and what is used of it today (not counted when
    there is no limit)."""
    limit = course.ai_token_budget
    if limit is None:
        return AIBudget(used=0, limit=None)
    return AIBudget(used=ai_tokens_used_today(user=user, course=course), limit=limit)


def ai_budget_reached(*, user: User, course: Course) -> bool:
    """Whether a new call to the language model for this learner must wait for tomorrow;
    never in offline mode (no ``LLM_BASE_URL``, as ``ai.llm.llm_is_configured`` says)."""
    return bool(settings.LLM_BASE_URL) and ai_budget(user=user, course=course).reached


def ai_budget_check(*, user: User, course: Course) -> None:
    """ValidationError (code ``ai_budget``) when the learner's budget is used up."""
    if ai_budget_reached(user=user, course=course):
        # The API sends retry_after as Retry-After (config/errors.py).
        raise ValidationError(
            BUDGET_REACHED, code="ai_budget", params={"retry_after": ai_budget_resets_in()}
        )
