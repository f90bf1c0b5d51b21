"""The tutoring flow against a real model server: llama.cpp with SmolLM2 started for
the run, or the server LLM_BASE_URL names (`pytest -m real_llm`)."""

from __future__ import annotations

import time

import pytest

from tests.material.material_files import MARKDOWN

pytestmark = [pytest.mark.real_llm, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_a_real_model_answers_from_the_course_material_with_usage(
    real_llm, celery_worker, student, course, tmp_path, settings
):
    from material.services import material_import_path, material_ingest
    from tutor.conversations import conversation_start, message_post
    from tutor.models import Message

    settings.MEDIA_ROOT = tmp_path / "media"
    source = tmp_path / "cells.md"
    source.write_text(MARKDOWN)
    for material in material_import_path(course=course, path=source, enqueue=False):
        material_ingest(material_id=material.pk)

    conversation = conversation_start(course=course, learner=student)
    _, reply = message_post(
        conversation=conversation, learner=student, text="Where does photosynthesis happen?"
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        reply.refresh_from_db()
        if reply.status in Message.FINISHED:
            break
        time.sleep(0.5)
    assert reply.status == Message.Status.DONE, reply.error
    assert reply.text.strip()
    assert reply.model == settings.LLM_MODEL
    assert reply.prompt_tokens and reply.completion_tokens
    assert reply.ttft_seconds is not None and reply.ttft_seconds > 0


def _wait_until(predicate, seconds: float):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.5)
    return predicate()


def test_a_real_model_writes_the_memory_of_a_finished_conversation(
    real_llm, celery_worker, student, course, settings
):
    from ai.models import LLMCall
    from tutor.conversations import conversation_end, conversation_start, message_post
    from tutor.models import Memory, Message

    conversation = conversation_start(course=course, learner=student)
    _, reply = message_post(
        conversation=conversation, learner=student, text="How do plants make sugar from light?"
    )
    assert _wait_until(
        lambda: Message.objects.filter(pk=reply.pk, status__in=Message.FINISHED).exists(), 180
    )
    conversation_end(conversation=conversation, learner=student)
    memory = _wait_until(lambda: Memory.objects.filter(conversation=conversation).first(), 180)
    assert memory is not None and memory.summary.strip()
    # Written by the model (the offline fallback names no model), and counted.
    assert memory.model == settings.LLM_MODEL
    call = LLMCall.objects.filter(purpose=LLMCall.Purpose.MEMORY, user=student).get()
    assert call.outcome == LLMCall.Outcome.FINISHED
    assert call.prompt_tokens > 0 and call.completion_tokens > 0


def test_stopping_a_real_reply_keeps_its_text_and_counts_its_tokens(
    real_llm, celery_worker, student, course
):
    from ai.models import LLMCall
    from tutor.conversations import conversation_start, message_post, reply_stop
    from tutor.models import Message

    conversation = conversation_start(course=course, learner=student)
    _, reply = message_post(
        conversation=conversation,
        learner=student,
        text="Explain, step by step and at length, how a cell divides.",
    )
    assert _wait_until(
        lambda: Message.objects.filter(pk=reply.pk, status=Message.Status.STREAMING).exists(),
        180,
    ), "the reply never started streaming"
    reply_stop(reply=reply, learner=student)
    assert _wait_until(
        lambda: Message.objects.filter(pk=reply.pk, status__in=Message.FINISHED).exists(), 120
    )
    reply.refresh_from_db()
    # A short model may finish before the stop lands; either way nothing is lost.
    assert reply.status in (Message.Status.STOPPED, Message.Status.DONE), reply.error
    call = LLMCall.objects.filter(purpose=LLMCall.Purpose.TUTOR, user=student).get()
    assert call.outcome in (LLMCall.Outcome.STOPPED, LLMCall.Outcome.FINISHED)
    assert call.prompt_tokens > 0
    if reply.status == Message.Status.STOPPED:
        assert call.outcome == LLMCall.Outcome.STOPPED
