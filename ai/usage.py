"""Language model usage of one course: requests, tokens, time to first token and energy.

Read from the ledger (``ai.models.LLMCall``): every call made for the course that reached
the model, whatever its outcome, counted once, per purpose (tutor replies, memory
summaries, grade proposals, practice questions: one call however many questions it
wrote). Calls that never reached the model (no tokens, reported or estimated) cost nothing
and are left out; offline replies and the learned scorer make no call. A call's tokens
are its prompt plus completion tokens, as the daily budget (``ai.budget``) counts them,
and energy is those tokens times ``LLM_JOULES_PER_TOKEN``, as the metrics count it.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections import defaultdict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db.models import Aggregate, Avg, Count, FloatField, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from ai.models import LLMCall

if TYPE_CHECKING:
    from learners.models import Course

JOULES_PER_WATT_HOUR = 3600
# Shown even when empty, in this order; any other purpose only when it has calls.
SHOWN_PURPOSES = (
    LLMCall.Purpose.TUTOR,
    LLMCall.Purpose.MEMORY,
    LLMCall.Purpose.GRADING,
    LLMCall.Purpose.PRACTICE,
)


class Percentile95(Aggregate):
    """PostgreSQL's continuous 95th percentile of a column, NULLs ignored."""

    function = "PERCENTILE_CONT"
    name = "Percentile95"
    template = "%(function)s(0.95) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()


@dataclasses.dataclass(frozen=True)
class UsageRow:
    """One day's (or a whole period's, with ``date`` None) usage of one feature."""

    date: datetime.date | None
    requests: int
    prompt_tokens: int
    completion_tokens: int
    ttft_count: int
    ttft_mean_s: float | None
    ttft_p95_s: float | None
    energy_joules: float | None  # None: energy is not measured (no joules per token set)
    # Replies checked against the learner's language, and those written in another one.
    language_checked: int = 0
    language_other: int = 0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def energy_wh(self) -> float | None:
        if self.energy_joules is None:
            return None
        return self.energy_joules / JOULES_PER_WATT_HOUR


@dataclasses.dataclass(frozen=True)
class FeatureUsage:
    key: str  # the calls' purpose
    label: str
    rows: list[UsageRow]
    total: UsageRow


_AGGREGATES: dict[str, Any] = {
    "requests": Count("pk"),
    "prompt": Sum("prompt_tokens"),
    "completion": Sum("completion_tokens"),
    "ttft_count": Count("ttft_seconds"),
    "ttft_mean": Avg("ttft_seconds"),
    "ttft_p95": Percentile95("ttft_seconds"),
    "language_checked": Count("reply_language_matches"),
    "language_other": Count("pk", filter=Q(reply_language_matches=False)),
}


def _row(values: Mapping[str, Any], *, date: datetime.date | None, joules: float) -> UsageRow:
    prompt = values["prompt"] or 0
    completion = values["completion"] or 0
    return UsageRow(
        date=date,
        requests=values["requests"],
        prompt_tokens=prompt,
        completion_tokens=completion,
        ttft_count=values["ttft_count"],
        ttft_mean_s=values["ttft_mean"],
        ttft_p95_s=values["ttft_p95"],
        energy_joules=(prompt + completion) * joules if joules > 0 else None,
        language_checked=values["language_checked"],
        language_other=values["language_other"],
    )


_EMPTY = {
    "requests": 0,
    "prompt": 0,
    "completion": 0,
    "ttft_count": 0,
    "ttft_mean": None,
    "ttft_p95": None,
    "language_checked": 0,
    "language_other": 0,
}


def _combined(totals: list[UsageRow]) -> UsageRow:
    ttft_count = sum(t.ttft_count for t in totals)
    ttft_sum = sum((t.ttft_mean_s or 0) * t.ttft_count for t in totals)
    energies = [t.energy_joules for t in totals]
    return UsageRow(
        date=None,
        requests=sum(t.requests for t in totals),
        prompt_tokens=sum(t.prompt_tokens for t in totals),
        completion_tokens=sum(t.completion_tokens for t in totals),
        ttft_count=ttft_count,
        ttft_mean_s=ttft_sum / ttft_count if ttft_count else None,
        ttft_p95_s=None,  # a percentile does not combine across features
        energy_joules=None if None in energies else sum(e or 0 for e in energies),
        language_checked=sum(t.language_checked for t in totals),
        language_other=sum(t.language_other for t in totals),
    )


def course_llm_usage(*, course: Course, days: int = 30) -> dict[str, Any]:
    """Per-day and total usage of the course's language model calls over the last ``days``
    days, per purpose, in two queries whatever the number of rows.

    Energy is tokens × ``settings.LLM_JOULES_PER_TOKEN``; at 0 it is not measured (None).
    """
    joules = float(settings.LLM_JOULES_PER_TOKEN)
    now = timezone.now()
    since = now - datetime.timedelta(days=days)
    calls = (
        LLMCall.objects.filter(course=course, created_at__gte=since)
        .exclude(tokens_source=LLMCall.TokensSource.NONE)
        .order_by()
    )
    daily = (
        calls.annotate(day=TruncDate("created_at", tzinfo=timezone.get_current_timezone()))
        .values("purpose", "day")
        .annotate(**_AGGREGATES)
        .order_by("purpose", "day")
    )
    rows: dict[str, list[UsageRow]] = defaultdict(list)
    for values in daily:
        rows[values["purpose"]].append(_row(values, date=values["day"], joules=joules))
    totals = {
        values["purpose"]: values for values in calls.values("purpose").annotate(**_AGGREGATES)
    }
    shown = [
        *SHOWN_PURPOSES,
        *(p for p in LLMCall.Purpose if p not in SHOWN_PURPOSES and p in totals),
    ]
    features = [
        FeatureUsage(
            key=purpose.value,
            label=str(purpose.label),
            rows=rows.get(purpose, []),
            total=_row(totals.get(purpose, _EMPTY), date=None, joules=joules),
        )
        for purpose in shown
    ]
    return {
        "course": course,
        "days": days,
        "since": timezone.localdate(since),
        "until": timezone.localdate(now),
        "joules_per_token": joules,
        "energy_measured": joules > 0,
        "features": features,
        "total": _combined([feature.total for feature in features]),
    }
