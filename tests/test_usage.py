"""The staff page of a course's language model usage: tokens, time to first token, energy."""

from __future__ import annotations

import datetime
import itertools

import pytest
from django.urls import reverse
from django.utils import timezone

from ai.ledger import LLMCallFor, Outcome, Purpose, llm_call_record
from ai.models import LLMCall
from ai.usage import course_llm_usage

pytestmark = pytest.mark.django_db

_versions = itertools.count()


def _when(days_ago: int) -> datetime.datetime:
    return timezone.now() - datetime.timedelta(days=days_ago)


def _ledger_row(course, user, purpose, *, prompt, completion, ttft, days_ago) -> None:
    """The ledger row the LLM client writes for one call (``llm_call_record``)."""
    row = llm_call_record(
        call=LLMCallFor(purpose=purpose, user_id=user.pk, course_id=course.pk),
        model="test-model",
        prompt_version="v1",
        outcome=Outcome.FINISHED,
        prompt_tokens=prompt,
        completion_tokens=completion,
        duration_s=2.0,
        ttft_s=ttft,
    )
    # created_at is auto_now_add: move it back after the insert.
    LLMCall.objects.filter(pk=row.pk).update(created_at=_when(days_ago))


def _usage(prompt: int, completion: int, ttft: float | None) -> dict:
    return {
        "model": "test-model",
        "prompt_version": "v1",
        "outcome": "ok",
        "finish_reason": "stop",
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "time_to_first_token_s": ttft,
        "total_s": 2.0,
        "queue_wait_s": 0.0,
        "attempts": 1,
    }


@pytest.fixture
def tutor_reply(student):
    from tutor.models import Conversation, Message

    def make(course, *, prompt=100, completion=20, ttft=0.5, days_ago=0, model="test-model"):
        conversation = Conversation.objects.create(course=course, learner=student, title="Q")
        Message.objects.create(conversation=conversation, role="user", text="Q")
        reply = Message.objects.create(
            conversation=conversation,
            role="assistant",
            text="A",
            status="done",
            mode="online" if model else "offline",
            model=model,
            prompt_tokens=prompt if model else None,
            completion_tokens=completion if model else None,
            ttft_seconds=ttft if model else None,
            usage=_usage(prompt, completion, ttft) if model else {},
        )
        # created is auto_now_add: move it back after the insert.
        Message.objects.filter(pk=reply.pk).update(created=_when(days_ago))
        if model:  # an offline reply makes no call
            _ledger_row(
                course,
                student,
                Purpose.TUTOR,
                prompt=prompt,
                completion=completion,
                ttft=ttft,
                days_ago=days_ago,
            )
        return reply

    return make


@pytest.fixture
def grade_proposal(student):
    from grading.models import Proposal
    from grading.rubrics import assignment_create
    from grading.submissions import submission_submit
    from tests.grading.workflow_factories import ESSAY, RUBRIC

    submissions = {}

    def make(course, *, prompt=1000, completion=300, ttft=1.5, days_ago=0, source="llm"):
        if course.pk not in submissions:
            assignment = assignment_create(course=course, title="Essay", rubric=RUBRIC)
            submissions[course.pk] = submission_submit(
                assignment=assignment, learner=student, text=ESSAY
            )
        usage = (
            _usage(prompt, completion, ttft)
            if source == "llm"
            else {"training_size": 40, "trained_at": "2026-01-01T00:00:00+00:00"}
        )
        proposal = Proposal.objects.create(
            submission=submissions[course.pk],
            rubric_version=f"r{next(_versions)}",
            source=source,
            status="done",
            model_name="test-model" if source == "llm" else "",
            usage=usage,
        )
        Proposal.objects.filter(pk=proposal.pk).update(created_at=_when(days_ago))
        if source == "llm":  # the learned scorer makes no call
            _ledger_row(
                course,
                student,
                Purpose.GRADING,
                prompt=prompt,
                completion=completion,
                ttft=ttft,
                days_ago=days_ago,
            )
        return proposal

    return make


def _feature(usage: dict, key: str):
    return next(feature for feature in usage["features"] if feature.key == key)


def test_it_totals_tokens_per_day_and_per_feature(course, tutor_reply, grade_proposal):
    tutor_reply(course, prompt=100, completion=20, ttft=0.5, days_ago=1)
    tutor_reply(course, prompt=200, completion=40, ttft=1.5, days_ago=1)
    tutor_reply(course, prompt=50, completion=10, ttft=1.0, days_ago=0)
    grade_proposal(course, prompt=1000, completion=300, ttft=2.0, days_ago=1)
    grade_proposal(course, prompt=800, completion=200, ttft=4.0, days_ago=0)

    usage = course_llm_usage(course=course)

    tutor = _feature(usage, "tutor")
    assert [row.date for row in tutor.rows] == [
        timezone.localdate(_when(1)),
        timezone.localdate(_when(0)),
    ]
    yesterday, today = tutor.rows
    assert (yesterday.requests, yesterday.prompt_tokens, yesterday.completion_tokens) == (
        2,
        300,
        60,
    )
    assert yesterday.ttft_mean_s == pytest.approx(1.0)
    assert yesterday.ttft_p95_s == pytest.approx(0.5 + 0.95 * 1.0)
    assert (today.requests, today.prompt_tokens, today.completion_tokens) == (1, 50, 10)
    assert (tutor.total.requests, tutor.total.prompt_tokens, tutor.total.completion_tokens) == (
        3,
        350,
        70,
    )
    assert tutor.total.ttft_mean_s == pytest.approx(1.0)

    grading = _feature(usage, "grading")
    assert [(r.requests, r.prompt_tokens, r.completion_tokens) for r in grading.rows] == [
        (1, 1000, 300),
        (1, 800, 200),
    ]
    assert grading.total.ttft_mean_s == pytest.approx(3.0)

    total = usage["total"]
    assert (total.requests, total.prompt_tokens, total.completion_tokens) == (5, 2150, 570)
    assert total.ttft_mean_s == pytest.approx((0.5 + 1.5 + 1.0 + 2.0 + 4.0) / 5)


def test_only_requests_that_reached_the_model_count(course, tutor_reply, grade_proposal):
    tutor_reply(course, model="")  # an offline reply
    grade_proposal(course, source="scorer")
    tutor_reply(course, prompt=10, completion=5, days_ago=40)  # outside the 30 days

    usage = course_llm_usage(course=course)

    assert usage["total"].requests == 0
    assert _feature(usage, "tutor").rows == []
    assert _feature(usage, "grading").rows == []


def test_energy_is_tokens_times_joules_per_token(settings, course, tutor_reply, grade_proposal):
    settings.LLM_JOULES_PER_TOKEN = 0.5
    tutor_reply(course, prompt=100, completion=20)
    grade_proposal(course, prompt=1000, completion=300)

    usage = course_llm_usage(course=course)

    assert usage["energy_measured"] is True
    assert _feature(usage, "tutor").total.energy_joules == pytest.approx(60.0)
    assert _feature(usage, "tutor").rows[0].energy_joules == pytest.approx(60.0)
    assert _feature(usage, "grading").total.energy_joules == pytest.approx(650.0)
    assert usage["total"].energy_joules == pytest.approx(710.0)
    assert usage["total"].energy_wh == pytest.approx(710.0 / 3600)


def test_energy_is_not_measured_at_zero_joules_per_token(
    settings, client, staff_user, course, tutor_reply
):
    settings.LLM_JOULES_PER_TOKEN = 0
    tutor_reply(course, prompt=100, completion=20)

    usage = course_llm_usage(course=course)
    assert usage["energy_measured"] is False
    assert usage["total"].energy_joules is None
    assert _feature(usage, "tutor").rows[0].energy_wh is None

    client.force_login(staff_user)
    response = client.get(reverse("course-usage", args=[course.pk]))
    assert response.status_code == 200
    assert "not measured" in response.content.decode()


def test_another_courses_usage_never_appears(
    client, staff_user, course, other_course, tutor_reply, grade_proposal
):
    tutor_reply(other_course, prompt=7777, completion=1)
    grade_proposal(other_course, prompt=8888, completion=1)
    tutor_reply(course, prompt=100, completion=20)

    usage = course_llm_usage(course=course)
    assert usage["total"].requests == 1
    assert usage["total"].prompt_tokens == 100

    client.force_login(staff_user)
    page = client.get(reverse("course-usage", args=[course.pk])).content.decode()
    assert "7777" not in page and "8888" not in page
    assert "100" in page


def test_the_page_shows_days_and_totals(settings, client, staff_user, course, tutor_reply):
    settings.LLM_JOULES_PER_TOKEN = 0.5
    tutor_reply(course, prompt=1234, completion=56, days_ago=2)
    client.force_login(staff_user)

    response = client.get(reverse("course-usage", args=[course.pk]))

    page = response.content.decode()
    assert response.status_code == 200
    assert timezone.localdate(_when(2)).isoformat() in page
    assert "1234" in page and "56" in page
    assert "645.0 J" in page  # (1234 + 56) × 0.5


def _page_queries(client, django_assert_num_queries, course, count: int) -> None:
    with django_assert_num_queries(count):
        response = client.get(reverse("course-usage", args=[course.pk]))
    assert response.status_code == 200


# Session, user, course, the ledger's per-day rows and its totals (one query each for
# every feature), and the learner profile the base template reads for display preferences.
PAGE_QUERIES = 6


def test_the_page_query_count_does_not_grow_with_rows(
    client, staff_user, course, tutor_reply, grade_proposal, django_assert_num_queries
):
    client.force_login(staff_user)
    tutor_reply(course)
    grade_proposal(course)
    _page_queries(client, django_assert_num_queries, course, PAGE_QUERIES)

    for days_ago in range(5):
        tutor_reply(course, days_ago=days_ago)
        tutor_reply(course, days_ago=days_ago)
        grade_proposal(course, days_ago=days_ago)
    _page_queries(client, django_assert_num_queries, course, PAGE_QUERIES)


def test_a_teacher_of_the_course_gets_404(client, teacher, course, tutor_reply):
    tutor_reply(course)
    client.force_login(teacher)

    response = client.get(reverse("course-usage", args=[course.pk]))

    assert response.status_code == 404


def test_an_anonymous_visitor_is_sent_to_log_in(client, course):
    response = client.get(reverse("course-usage", args=[course.pk]))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_the_admin_course_list_links_to_the_usage_page(client, staff_user, course):
    client.force_login(staff_user)

    response = client.get(reverse("admin:learners_course_changelist"))

    assert response.status_code == 200
    assert reverse("course-usage", args=[course.pk]) in response.content.decode()
