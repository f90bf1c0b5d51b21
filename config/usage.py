"""Language model usage of one course: requests, tokens, time to first token and energy.

Only calls that really reached the model count: tutor replies that name a model (offline
replies name none), and grade proposals, memory summaries and practice question jobs that
carry a usage record (a job's usage is counted once, from its ``QuestionGeneration`` row,
not from each question it wrote). Tokens are the server's own counts, or counted with its
tokenizer when it reported none (``tutor.llm``).
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

from django.conf import settings
from django.db.models import Aggregate, Avg, Count, F, FloatField, IntegerField, QuerySet, Sum
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, TruncDate
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from grading.models import Proposal
from learners.models import Course, QuestionGeneration
from tutor.models import Memory, Message

JOULES_PER_WATT_HOUR = 3600


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
    key: str
    label: str
    rows: list[UsageRow]
    total: UsageRow


def _tutor_requests(course: Course, since: datetime.datetime) -> QuerySet:
    return (
        Message.objects.filter(
            conversation__course=course,
            role=Message.Role.ASSISTANT,
            created__gte=since,
        )
        .exclude(model="")
        .annotate(
            when=F("created"),
            p_tokens=F("prompt_tokens"),
            c_tokens=F("completion_tokens"),
            ttft=F("ttft_seconds"),
        )
    )


def _usage_requests(rows: QuerySet, *, when: str) -> QuerySet:
    """Rows that keep a call's usage record in a ``usage`` JSON field."""
    return rows.filter(usage__has_key="outcome").annotate(
        when=F(when),
        p_tokens=Cast(KT("usage__prompt_tokens"), IntegerField()),
        c_tokens=Cast(KT("usage__completion_tokens"), IntegerField()),
        ttft=Cast(KT("usage__time_to_first_token_s"), FloatField()),
    )


def _memory_requests(course: Course, since: datetime.datetime) -> QuerySet:
    return _usage_requests(Memory.objects.filter(course=course, created__gte=since), when="created")


def _practice_requests(course: Course, since: datetime.datetime) -> QuerySet:
    return _usage_requests(
        QuestionGeneration.objects.filter(concept__course=course, created_at__gte=since),
        when="created_at",
    )


def _grading_requests(course: Course, since: datetime.datetime) -> QuerySet:
    return _usage_requests(
        Proposal.objects.filter(
            submission__assignment__course=course,
            source=Proposal.Source.LLM,
            created_at__gte=since,
        ),
        when="created_at",
    )


_AGGREGATES: dict[str, Any] = {
    "requests": Count("pk"),
    "prompt": Sum("p_tokens"),
    "completion": Sum("c_tokens"),
    "ttft_count": Count("ttft"),
    "ttft_mean": Avg("ttft"),
    "ttft_p95": Percentile95("ttft"),
}


def _row(values: dict[str, Any], *, date: datetime.date | None, joules: float) -> UsageRow:
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
    )


def _feature(key: str, label: str, requests: QuerySet, *, joules: float) -> FeatureUsage:
    tz = timezone.get_current_timezone()
    daily = (
        requests.annotate(day=TruncDate("when", tzinfo=tz))
        .order_by()
        .values("day")
        .annotate(**_AGGREGATES)
        .order_by("day")
    )
    rows = [_row(values, date=values["day"], joules=joules) for values in daily]
    total = _row(requests.order_by().aggregate(**_AGGREGATES), date=None, joules=joules)
    return FeatureUsage(key=key, label=str(label), rows=rows, total=total)


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
    )


def course_llm_usage(*, course: Course, days: int = 30) -> dict[str, Any]:
    """Per-day and total usage of the course's language model calls over the last ``days``
        days, per feature (tutor, grading, memory, practice), in two queries per feature whatever
    the number of rows.

        Energy is tokens × ``settings.LLM_JOULES_PER_TOKEN``; at 0 it is not measured (None).
    """
    joules = float(settings.LLM_JOULES_PER_TOKEN)
    now = timezone.now()
    since = now - datetime.timedelta(days=days)
    features = [
        _feature("tutor", _("Tutor replies"), _tutor_requests(course, since), joules=joules),
        _feature("grading", _("Grade proposals"), _grading_requests(course, since), joules=joules),
        _feature("memory", _("Memory summaries"), _memory_requests(course, since), joules=joules),
        _feature(
            "practice", _("Practice questions"), _practice_requests(course, since), joules=joules
        ),
    ]
    wrong_language = _tutor_requests(course, since).filter(usage__language__matches=False).count()
    return {
        "course": course,
        "days": days,
        # Tutor replies whose language is not the learner's (a weak model's slip).
        "wrong_language_replies": wrong_language,
        "since": timezone.localdate(since),
        "until": timezone.localdate(now),
        "joules_per_token": joules,
        "energy_measured": joules > 0,
        "features": features,
        "total": _combined([feature.total for feature in features]),
    }
