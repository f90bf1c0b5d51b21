"""The ledger of language model calls: one row per real call, written by the LLM client
against the loopback test server (tests/llm_server.py), read by the budget and the usage
page, exported and erased with the person."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from django.urls import reverse
from prometheus_client import REGISTRY

from ai.budget import ai_tokens_used_today
from ai.ledger import LLMCallFor, Outcome, Purpose, llm_call_record
from ai.llm import LLMBadResponse, chat_stream
from ai.llm_capabilities import prompt_tokens_count
from ai.models import LLMCall
from ai.tokens import messages_tokens_estimate, tokens_estimate
from ai.usage import course_llm_usage
from tests.grading.workflow_factories import grade_reply
from tests.learning.learning_fixtures import PHOTOSYNTHESIS

MESSAGES = [
    {"role": "system", "content": "You are a patient tutor."},
    {"role": "user", "content": "What does a mitochondrion do?"},
]


def _feature(usage: dict, key: str):
    return next(feature for feature in usage["features"] if feature.key == key)


def _for(student, course, purpose=Purpose.TUTOR) -> LLMCallFor:
    return LLMCallFor(purpose=purpose, user_id=student.pk, course_id=course.pk)


# --- the client writes one row per call ------------------------------------------------------


# Transactional: the reply's lease is renewed from another thread, which must see its row.
@pytest.mark.django_db(transaction=True)
def test_every_real_call_of_a_learner_is_one_row_and_budget_and_usage_page_agree(
    client,
    student,
    course,
    llm_server,
    eager_tasks,
    clean_reply_streams,
    assignment,
    submit,
    django_capture_on_commit_callbacks,
):
    # A tutor reply (streamed), the memory of its conversation and an essay's AI grade
    # (JSON), each through its production path.
    client.force_login(student)
    with django_capture_on_commit_callbacks(execute=True):
        posted = client.post(
            reverse("conversations:api-post", args=[course.pk]),
            {"text": "How do plants eat?"},
            content_type="application/json",
        )
    assert posted.status_code == 201, posted.content
    reply = posted.json()["reply"]
    conversation_id = posted.json()["conversation"]["id"]
    from tutor.conversations import conversation_end
    from tutor.models import Conversation

    with django_capture_on_commit_callbacks(execute=True):
        conversation_end(conversation=Conversation.objects.get(pk=conversation_id), learner=student)
    llm_server.script(json_reply=grade_reply(assignment))
    with django_capture_on_commit_callbacks(execute=True):
        submit(student)

    assert llm_server.stats.chat_requests == 3
    calls = {call.purpose: call for call in LLMCall.objects.filter(user=student, course=course)}
    assert sorted(calls) == ["grading", "memory", "tutor"]
    assert all(call.outcome == Outcome.FINISHED for call in calls.values())
    assert all(call.tokens_source == "server" for call in calls.values())
    assert all(call.model == llm_server.model for call in calls.values())

    from tutor.models import Memory, Message

    stored = Message.objects.get(pk=reply["id"])
    tutor = calls["tutor"]
    assert (tutor.prompt_tokens, tutor.completion_tokens) == (
        stored.prompt_tokens,
        stored.completion_tokens,
    )
    assert tutor.prompt_version == stored.prompt_version
    assert tutor.ttft_seconds == pytest.approx(stored.ttft_seconds)
    memory = Memory.objects.get(learner=student, course=course)
    assert calls["memory"].prompt_tokens == memory.usage["prompt_tokens"]

    # One definition of tokens: the budget and the usage page count the same calls alike.
    used = ai_tokens_used_today(user=student, course=course)
    assert used == sum(call.tokens for call in calls.values()) > 0
    usage = course_llm_usage(course=course)
    assert usage["total"].tokens == used
    assert usage["total"].requests == 3
    for purpose, call in calls.items():
        assert _feature(usage, purpose).total.tokens == call.tokens


@pytest.mark.django_db
def test_offline_mode_makes_no_call_and_writes_no_row(
    client, student, course, settings, eager_tasks, django_capture_on_commit_callbacks
):
    settings.LLM_BASE_URL = ""
    client.force_login(student)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("conversations:api-post", args=[course.pk]),
            {"text": "Photosynthesis?"},
            content_type="application/json",
        )
    assert response.status_code == 201
    assert not LLMCall.objects.exists()


@pytest.mark.django_db
def test_a_stopped_stream_counts_estimated_tokens_so_stopping_is_never_free(
    student, course, llm_server
):
    llm_server.script(reply="one two three four five six seven eight", tokens_per_second=50)
    stream = chat_stream(messages=MESSAGES, prompt_version="tutor-v1", call=_for(student, course))
    with stream:
        first = next(iter(stream))
    assert first

    call = LLMCall.objects.get(user=student, course=course)
    assert call.outcome == Outcome.STOPPED
    # The server's usage comes in the last chunk, which a stopped stream never reads.
    # The client counts them itself: with the server's tokenizer, or (this test server has
    # none) by the UTF-8 byte bound, at least the generic estimate.
    assert call.tokens_source == "estimated"
    assert call.prompt_tokens == prompt_tokens_count(None, MESSAGES)[0]
    assert call.prompt_tokens >= messages_tokens_estimate(MESSAGES)
    assert call.completion_tokens == len(stream.text.encode()) >= tokens_estimate(stream.text) > 0
    assert ai_tokens_used_today(user=student, course=course) == call.tokens


@pytest.mark.django_db
def test_a_broken_stream_is_a_permanent_error_with_its_kind(student, course, llm_server):
    llm_server.break_next(mode="cut", after_tokens=2)
    with pytest.raises(LLMBadResponse):
        list(chat_stream(messages=MESSAGES, prompt_version="tutor-v1", call=_for(student, course)))

    call = LLMCall.objects.get(user=student, course=course)
    assert (call.outcome, call.error_kind) == (Outcome.PERMANENT_ERROR, "LLMBadResponse")
    assert call.tokens_source == "estimated" and call.completion_tokens > 0
    assert call.attempts == 1 and call.duration_seconds > 0


@pytest.mark.django_db
def test_every_call_of_a_practice_generation_is_in_the_ledger_under_the_teacher(
    teacher, course, make_concept, llm_server, settings
):
    from learning.practice import questions_generate

    settings.LLM_JOULES_PER_TOKEN = 0.5
    # One question a call: the same reply again is a sentence already used, so unusable.
    llm_server.script(
        json_reply={
            "sentence": "The Calvin cycle uses carbon dioxide from the air to build sugars.",
            "answer": "carbon dioxide",
        }
    )
    concept = make_concept("Photosynthesis")

    saved = questions_generate(
        concept=concept, texts=[PHOTOSYNTHESIS], use_llm=True, requested_by_id=teacher.pk
    )

    assert len(saved) == 1
    calls = list(LLMCall.objects.all())
    assert len(calls) == llm_server.stats.chat_requests > 1
    assert {(c.purpose, c.user, c.course) for c in calls} == {(Purpose.PRACTICE, teacher, course)}
    practice = _feature(course_llm_usage(course=course), "practice")
    assert practice.total.requests == len(calls)
    assert practice.total.tokens == sum(c.tokens for c in calls)
    assert practice.total.energy_joules == pytest.approx(practice.total.tokens * 0.5)
    assert saved[0].generation["prompt_tokens"] == sum(c.prompt_tokens for c in calls)


@pytest.mark.django_db
def test_calls_that_never_reached_the_model_cost_nothing_on_the_usage_page(
    student, course, llm_server, settings
):
    from ai.llm import LLMUnavailable

    settings.LLM_MAX_RETRIES = 0
    llm_server.fail_next(status=503)
    with pytest.raises(LLMUnavailable):
        list(chat_stream(messages=MESSAGES, prompt_version="tutor-v1", call=_for(student, course)))

    call = LLMCall.objects.get()
    assert (call.outcome, call.tokens_source, call.tokens) == ("transient_error", "none", 0)
    assert course_llm_usage(course=course)["total"].requests == 0
    assert ai_tokens_used_today(user=student, course=course) == 0


# --- privacy ----------------------------------------------------------------------------------


def _record(user, course, *, prompt: int) -> LLMCall:
    return llm_call_record(
        call=LLMCallFor(purpose=Purpose.TUTOR, user_id=user.pk, course_id=course.pk),
        model="llm-test-model",
        prompt_version="tutor-v1",
        outcome=Outcome.FINISHED,
        prompt_tokens=prompt,
        completion_tokens=10,
        duration_s=1.0,
    )


@pytest.mark.django_db
def test_the_export_includes_the_persons_calls(student, other_student, course, other_course):
    from privacy.personal_data import privacy_export

    _record(student, course, prompt=123)
    _record(other_student, other_course, prompt=999)

    archive = zipfile.ZipFile(io.BytesIO(privacy_export(user=student)))
    rows = json.loads(archive.read("ai.json"))["ai.llmcall"]
    assert [(row["purpose"], row["prompt_tokens"], row["course__title"]) for row in rows] == [
        ("tutor", 123, course.title)
    ]


@pytest.mark.django_db
def test_erasure_removes_the_persons_calls_and_no_one_elses(
    student, other_student, course, other_course
):
    from privacy.personal_data import privacy_erase

    _record(student, course, prompt=100)
    kept = _record(other_student, other_course, prompt=200)

    privacy_erase(user=student, actor=None)

    assert list(LLMCall.objects.all()) == [kept]
    assert course_llm_usage(course=course)["total"].requests == 0


@pytest.mark.django_db
def test_the_usage_page_says_how_many_replies_were_in_another_language(
    client, admin_user, student, course
):
    def reply(matches):
        llm_call_record(
            call=_for(student, course),
            model="m",
            prompt_version="tutor_system.v1",
            outcome=Outcome.FINISHED,
            prompt_tokens=100,
            completion_tokens=20,
            duration_s=1.0,
            language_checked=True,
            language_matches=matches,
        )

    def counted(result):
        labels = {"purpose": "tutor", "result": result}
        return REGISTRY.get_sample_value("tutoring_llm_reply_language_total", labels) or 0.0

    before = {result: counted(result) for result in ("matches", "other", "unknown")}
    for matches in (True, True, False, None):  # None: too short to tell, not counted
        reply(matches)
    assert {result: counted(result) - before[result] for result in before} == {
        "matches": 2,
        "other": 1,
        "unknown": 1,
    }
    tutor = _feature(course_llm_usage(course=course), "tutor").total
    assert (tutor.requests, tutor.language_checked, tutor.language_other) == (4, 3, 1)

    client.force_login(admin_user)
    page = client.get(reverse("course-usage", args=[course.pk]))
    assert page.status_code == 200
    assert "Reply language: 1 of 3 replies checked were in another language" in (
        page.content.decode()
    )
    # Features whose replies are never checked say nothing about language.
    assert page.content.decode().count("Reply language:") == 1


# --- a refused row ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_refused_row_leaves_the_callers_transaction_usable(student, course):
    # The test runs inside a transaction, as a caller's atomic block would.
    assert _record(student, course, prompt=2**40) is None  # out of the column's range
    assert _record(student, course, prompt=5) is not None
    assert list(LLMCall.objects.values_list("prompt_tokens", flat=True)) == [5]


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_a_row_is_one_statement(student, course, django_assert_num_queries):
    # A reply's worker holds no transaction: no BEGIN and COMMIT around the INSERT.
    with django_assert_num_queries(1):
        assert _record(student, course, prompt=5) is not None
    assert _record(student, course, prompt=2**40) is None
    assert _record(student, course, prompt=7) is not None
    assert sorted(LLMCall.objects.values_list("prompt_tokens", flat=True)) == [5, 7]
