"""The tutoring flow against a real model server: llama.cpp with SmolLM2 started for
the run, or the server LLM_BASE_URL names (`pytest -m real_llm`)."""

from __future__ import annotations

import time

import pytest

from tests.tutor.material_files import MARKDOWN

pytestmark = [pytest.mark.real_llm, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_a_real_model_answers_from_the_course_material_with_usage(
    real_llm, celery_worker, student, course, tmp_path, settings
):
    from tutor.conversations import conversation_start, message_post
    from tutor.models import Message
    from tutor.services import material_import_path, material_ingest

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
