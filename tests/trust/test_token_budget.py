"""Each learner's daily token budget for AI features, per course: what counts, where it
stops the tutor and AI grading, what the learner is told, and that offline mode is never
limited. Replies are written by the real reply task (run eagerly) against the loopback LLM
test server."""

from __future__ import annotations

import datetime

import pytest
from django.urls import reverse
from django.utils import timezone

from ai.budget import (
    BUDGET_REACHED,
    GRADED_WITHOUT_AI,
    ai_budget,
    ai_budget_reached,
    ai_tokens_used_today,
)
from ai.ledger import LLMCallFor, Outcome, Purpose, llm_call_record
from ai.models import LLMCall
from grading.models import Proposal
from tests.grading.workflow_factories import ESSAY, RUBRIC
from tutor.models import Conversation, Memory, Message

pytestmark = pytest.mark.django_db


def _call(learner, course, purpose, *, prompt, completion, days_ago=0) -> None:
    """The ledger row the LLM client writes for one call (``llm_call_record``)."""
    row = llm_call_record(
        call=LLMCallFor(purpose=purpose, user_id=learner.pk, course_id=course.pk),
        model="llm-test-model",
        prompt_version="v1",
        outcome=Outcome.FINISHED,
        prompt_tokens=prompt,
        completion_tokens=completion,
        duration_s=1.0,
    )
    if days_ago:
        when = timezone.now() - datetime.timedelta(days=days_ago)
        LLMCall.objects.filter(pk=row.pk).update(created_at=when)


def _reply(learner, course, *, prompt=0, completion=0, days_ago=0) -> Message:
    conversation = Conversation.objects.create(course=course, learner=learner, title="Q")
    Message.objects.create(conversation=conversation, role="user", text="Q")
    reply = Message.objects.create(
        conversation=conversation,
        role="assistant",
        text="A.",
        status="done",
        mode="online",
        model="llm-test-model",
        prompt_tokens=prompt,
        completion_tokens=completion,
    )
    if days_ago:
        when = timezone.now() - datetime.timedelta(days=days_ago)
        Message.objects.filter(pk=reply.pk).update(created=when)
    _call(learner, course, Purpose.TUTOR, prompt=prompt, completion=completion, days_ago=days_ago)
    return reply


def _use_up(learner, course, *, budget=1000) -> None:
    course.ai_daily_token_budget = budget
    course.save()
    _reply(learner, course, prompt=budget - 100, completion=100)


def _assignment(course):
    from grading.rubrics import assignment_create

    return assignment_create(course=course, title="Why photosynthesis matters", rubric=RUBRIC)


def _submit(learner, course):
    from grading.submissions import submission_submit

    return submission_submit(assignment=_assignment(course), learner=learner, text=ESSAY)


def _api(name, course, *args):
    return reverse(f"conversations:api-{name}", args=[course.pk, *args])


# --- what counts -------------------------------------------------------------------------


def test_todays_replies_memories_and_ai_grade_proposals_count_and_nothing_else(
    student, other_student, course, other_course
):
    _reply(student, course, prompt=300, completion=50)
    _reply(student, course, prompt=None, completion=20)  # a failed call may lack a count
    _reply(student, course, prompt=9000, completion=900, days_ago=1)  # yesterday
    _reply(student, other_course, prompt=7000, completion=700)  # another course
    _reply(other_student, course, prompt=5000, completion=500)  # someone else
    Memory.objects.create(
        learner=student,
        course=course,
        summary="Asked about light.",
        usage={"prompt_tokens": 120, "completion_tokens": 30},
    )
    _call(student, course, Purpose.MEMORY, prompt=120, completion=30)
    submission = _submit(student, course)
    Proposal.objects.create(
        submission=submission,
        rubric_version="v1",
        source=Proposal.Source.LLM,
        usage={"prompt_tokens": 1000, "completion_tokens": 200, "outcome": "finished"},
    )
    _call(student, course, Purpose.GRADING, prompt=1000, completion=200)
    Proposal.objects.create(submission=submission, rubric_version="v1", source="scorer")

    assert ai_tokens_used_today(user=student, course=course) == 350 + 20 + 150 + 1200


def test_the_course_budget_overrides_the_site_default_and_zero_means_no_limit(
    course, student, settings
):
    settings.AI_DAILY_TOKEN_BUDGET = 5000
    assert course.ai_token_budget == 5000
    course.ai_daily_token_budget = 800
    assert course.ai_token_budget == 800
    course.ai_daily_token_budget = 0
    assert course.ai_token_budget is None
    course.ai_daily_token_budget = None
    settings.AI_DAILY_TOKEN_BUDGET = 0
    assert course.ai_token_budget is None

    _reply(student, course, prompt=10**6)
    assert ai_budget(user=student, course=course).reached is False


def test_a_reply_written_by_the_model_counts_the_tokens_the_server_reported(
    client,
    student,
    course,
    llm_server,
    eager_tasks,
    clean_reply_streams,
    django_capture_on_commit_callbacks,
):
    client.force_login(student)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            _api("post", course), {"text": "How do plants eat?"}, content_type="application/json"
        )
    assert response.status_code == 201, response.content
    reply = Message.objects.get(pk=response.json()["reply"]["id"])
    assert reply.status == "done" and reply.completion_tokens and reply.prompt_tokens
    used = ai_tokens_used_today(user=student, course=course)
    assert used == reply.prompt_tokens + reply.completion_tokens


# --- the tutor -----------------------------------------------------------------------------


def test_the_budget_stops_the_next_message_once_a_real_reply_used_it(
    client,
    student,
    course,
    llm_server,
    eager_tasks,
    clean_reply_streams,
    django_capture_on_commit_callbacks,
):
    client.force_login(student)
    course.ai_daily_token_budget = 1  # the first reply uses more than this
    course.save()
    with django_capture_on_commit_callbacks(execute=True):
        first = client.post(
            _api("post", course), {"text": "What is light?"}, content_type="application/json"
        )
    assert first.status_code == 201
    conversation = first.json()["conversation"]["id"]

    second = client.post(
        _api("post", course),
        {"text": "And chlorophyll?", "conversation": conversation},
        content_type="application/json",
    )
    assert second.status_code == 429
    assert second.json() == {"detail": str(BUDGET_REACHED)}
    assert 0 < int(second["Retry-After"]) <= 24 * 3600
    assert llm_server.stats.chat_requests == 1
    assert Message.objects.filter(conversation_id=conversation).count() == 2  # nothing new


def test_a_new_conversation_is_not_even_started_over_budget(client, student, course, llm_server):
    _use_up(student, course)
    client.force_login(student)
    before = Conversation.objects.count()
    response = client.post(_api("post", course), {"text": "Hi"}, content_type="application/json")
    assert response.status_code == 429
    assert Conversation.objects.count() == before


def test_the_page_shows_why_and_keeps_the_students_message(client, student, course, llm_server):
    _use_up(student, course)
    client.force_login(student)
    url = reverse("conversations:post", args=[course.pk])
    draft = "Why are leaves green?"

    page = client.post(url, {"text": draft})
    assert page.status_code == 429
    html = page.content.decode()
    assert "reached today&#x27;s limit for AI help" in html
    assert draft in html  # back in the message box

    fragment = client.post(url, {"text": draft}, HTTP_HX_REQUEST="true")
    html = fragment.content.decode()
    assert "reached today&#x27;s limit for AI help" in html and draft in html
    assert not Message.objects.filter(text=draft).exists()


def test_the_message_is_in_the_learners_language(client, student, course, llm_server):
    _use_up(student, course)
    student.preferred_language = "es"
    student.save()
    client.force_login(student)
    response = client.post(_api("post", course), {"text": "Hola"}, content_type="application/json")
    assert response.status_code == 429
    assert response.json()["detail"].startswith("Has llegado al límite de hoy de ayuda con IA")


def test_retrying_a_failed_reply_waits_for_tomorrow_too(client, student, course, llm_server):
    reply = _reply(student, course, prompt=900, completion=100)
    Message.objects.filter(pk=reply.pk).update(status="failed")
    course.ai_daily_token_budget = 1000
    course.save()
    client.force_login(student)

    response = client.post(_api("retry", course, reply.pk))
    assert response.status_code == 429
    reply.refresh_from_db()
    assert reply.status == "failed"

    page = client.post(reverse("conversations:retry", args=[course.pk, reply.pk]), follow=True)
    assert "reached today&#x27;s limit for AI help" in page.content.decode()
    assert llm_server.stats.chat_requests == 0


def test_offline_mode_costs_nothing_and_is_never_limited(
    client, student, course, settings, eager_tasks, django_capture_on_commit_callbacks
):
    settings.LLM_BASE_URL = ""
    _use_up(student, course)
    assert not ai_budget_reached(user=student, course=course)
    client.force_login(student)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            _api("post", course), {"text": "Photosynthesis?"}, content_type="application/json"
        )
    assert response.status_code == 201
    reply = Message.objects.get(pk=response.json()["reply"]["id"])
    assert reply.mode == "offline" and reply.status == "done"
    assert ai_tokens_used_today(user=student, course=course) == 1000  # unchanged


def test_over_budget_a_memory_is_written_without_the_model(student, course, llm_server):
    from tutor.replies import conversation_summarize

    _use_up(student, course)
    conversation = Conversation.objects.create(course=course, learner=student)
    Message.objects.create(conversation=conversation, role="user", text="What is a leaf?")

    summary = conversation_summarize(conversation=conversation)
    assert summary.prompt_version == "memory_offline.v1"
    assert llm_server.stats.chat_requests == 0


# --- AI grading ------------------------------------------------------------------------------


def test_over_budget_an_essay_is_kept_and_goes_to_the_teacher_without_an_ai_proposal(
    client, student, course, llm_server
):
    assignment = _assignment(course)
    _use_up(student, course)
    client.force_login(student)
    api = reverse("grading:api-submit", args=[course.pk, assignment.pk])

    response = client.post(api, {"text": ESSAY}, content_type="application/json")
    assert response.status_code == 201
    assert response.json()["notice"] == str(GRADED_WITHOUT_AI)
    submission = assignment.submissions.get(pk=response.json()["id"])
    assert submission.text == ESSAY
    assert not submission.proposals.filter(source=Proposal.Source.LLM).exists()

    page = client.post(
        reverse("grading:submit", args=[course.pk, assignment.pk]), {"text": ESSAY}, follow=True
    )
    html = page.content.decode()
    assert "Your essay was submitted." in html
    assert "your teacher will grade this essay without an AI suggestion" in html


def test_within_budget_an_essay_gets_its_ai_proposal(client, student, course, llm_server):
    assignment = _assignment(course)
    course.ai_daily_token_budget = 1000
    course.save()
    _reply(student, course, prompt=500)
    client.force_login(student)

    response = client.post(
        reverse("grading:api-submit", args=[course.pk, assignment.pk]),
        {"text": ESSAY},
        content_type="application/json",
    )
    assert response.status_code == 201
    assert response.json()["notice"] == ""
    submission = assignment.submissions.get(pk=response.json()["id"])
    assert submission.proposals.filter(source=Proposal.Source.LLM).exists()
