"""Conversation services: posting, writing replies online and offline, failures, stop,
retry, the stale check, feedback and memories."""

from __future__ import annotations

import json
import threading
import time

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, connections, transaction

from ai.models import LLMCall
from ai.usage import course_llm_usage
from tutor import conversations, streams
from tutor.conversations import MESSAGE_MAX_CHARS, message_post
from tutor.models import Feedback, Memory, Message

pytestmark = pytest.mark.django_db


def _post(conversation, learner, text, capture):
    with capture(execute=True):
        return message_post(conversation=conversation, learner=learner, text=text)


# --- posting ---------------------------------------------------------------------------


def test_posting_stores_the_message_and_a_pending_reply_and_queues_it_on_commit(
    conversation, student, django_capture_on_commit_callbacks, monkeypatch
):
    queued = []
    monkeypatch.setattr(
        "tutor.conversation_tasks.reply_write.apply_async",
        lambda args, **options: queued.append((args, options)),
    )
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        question, reply = message_post(
            conversation=conversation, learner=student, text="  What is ATP?  "
        )
        assert queued == []  # nothing leaves before the transaction commits
    for callback in callbacks:
        callback()
    assert question.text == "What is ATP?"
    assert question.role == Message.Role.USER
    assert reply.status == Message.Status.PENDING
    # Fire and forget: nobody waits on a result (see config.celery.enqueue_on_commit).
    # Its queue comes from CELERY_TASK_ROUTES (tests/deploy/test_task_routes.py pins it).
    assert queued == [([reply.pk], {"ignore_result": True})]
    conversation.refresh_from_db()
    assert conversation.title == "What is ATP?"


@pytest.mark.parametrize("text", ["", "   \n\t "])
def test_it_rejects_an_empty_message_and_stores_nothing(conversation, student, text):
    with pytest.raises(ValidationError) as caught:
        message_post(conversation=conversation, learner=student, text=text)
    assert caught.value.code == "empty"
    assert not Message.objects.exists()


def test_it_rejects_a_message_over_the_limit_with_its_length(conversation, student):
    with pytest.raises(ValidationError) as caught:
        message_post(conversation=conversation, learner=student, text="x" * (MESSAGE_MAX_CHARS + 1))
    assert caught.value.code == "too_long"
    assert str(MESSAGE_MAX_CHARS + 1) in caught.value.messages[0]
    assert not Message.objects.exists()


def test_a_message_at_the_limit_is_accepted(conversation, student, monkeypatch):
    monkeypatch.setattr("tutor.conversations._enqueue_reply", lambda pk: None)
    question, _ = message_post(conversation=conversation, learner=student, text="x" * 4000)
    assert len(question.text) == MESSAGE_MAX_CHARS


def test_it_refuses_a_new_message_while_the_tutor_is_still_answering(
    conversation, student, monkeypatch
):
    monkeypatch.setattr("tutor.conversations._enqueue_reply", lambda pk: None)
    message_post(conversation=conversation, learner=student, text="first")
    with pytest.raises(ValidationError) as caught:
        message_post(conversation=conversation, learner=student, text="second")
    assert caught.value.code == "busy"
    assert Message.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_of_two_posts_at_the_same_instant_one_is_stored_and_the_other_answered_busy(
    conversation, student, monkeypatch
):
    """Both pass the busy check before either commits; the database's one unfinished
    reply per conversation stops the second (no lock is taken), answered as busy."""
    monkeypatch.setattr("tutor.conversations._enqueue_reply", lambda pk: None)
    first_posted, release = threading.Event(), threading.Event()
    outcome: dict[str, object] = {}

    def first() -> None:
        try:
            with transaction.atomic():
                message_post(conversation=conversation, learner=student, text="first")
                first_posted.set()
                release.wait(timeout=30)
        finally:
            connections.close_all()

    def second() -> None:
        try:
            message_post(conversation=conversation, learner=student, text="second")
            outcome["second"] = "stored"
        except ValidationError as error:
            outcome["second"] = error.code
        finally:
            connections.close_all()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    threads[0].start()
    assert first_posted.wait(timeout=30)
    threads[1].start()
    # The second waits on the first's unfinished reply in the unique index.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0]:
                break
        time.sleep(0.05)
    release.set()
    for thread in threads:
        thread.join(timeout=30)
    assert outcome == {"second": "busy"}
    assert list(Message.objects.order_by("pk").values_list("role", "text")) == [
        ("user", "first"),
        ("assistant", ""),
    ]


def test_nobody_posts_into_someone_elses_conversation(conversation, other_student):
    with pytest.raises(PermissionDenied):
        message_post(conversation=conversation, learner=other_student, text="hello")


# --- offline replies -------------------------------------------------------------------


def test_offline_reply_quotes_the_passages_with_citations_and_a_check_question(
    conversation, student, search, eager_tasks, django_capture_on_commit_callbacks, settings
):
    assert not settings.LLM_BASE_URL
    _question, reply = _post(
        conversation, student, "What is photosynthesis?", django_capture_on_commit_callbacks
    )
    reply.refresh_from_db()
    assert reply.status == Message.Status.DONE
    assert reply.mode == Message.Mode.OFFLINE
    assert reply.prompt_version == "offline.v1"
    assert reply.model == ""
    assert "offline" in reply.text
    assert "[1]" in reply.text and "[2]" in reply.text
    assert "turn light energy into chemical energy" in reply.text
    # The check question is made from the top passage's own definition.
    assert "In your own words, what is Photosynthesis?" in reply.text
    assert [c["n"] for c in reply.citations] == [1, 2]
    assert reply.citations[0]["url"] == "/courses/1/#chunk-11"
    assert search.queries == ["What is photosynthesis?"]
    # The page reads the same reply from the stream.
    assert streams.reply_stream_text(message_id=reply.pk) == reply.text


def test_offline_reply_says_when_the_material_does_not_cover_the_question(
    conversation, student, search, eager_tasks, django_capture_on_commit_callbacks
):
    search.results = []
    _q, reply = _post(
        conversation, student, "Who won the 1998 World Cup?", django_capture_on_commit_callbacks
    )
    reply.refresh_from_db()
    assert reply.status == Message.Status.DONE
    assert "does not seem to cover this" in reply.text
    assert reply.citations == []


def test_offline_check_question_falls_back_to_a_cloze(passages):
    from dataclasses import replace

    from tutor.replies import check_question

    passage = replace(passages[0], text="Light energy absorbed by chlorophyll splits water.")
    question = check_question(passage)
    assert "_____" in question and "[1]" in question


# --- online replies --------------------------------------------------------------------


def test_online_reply_streams_the_model_text_and_stores_how_it_was_made(
    conversation, student, search, eager_tasks, django_capture_on_commit_callbacks, llm_server
):
    llm_server.script(reply="What do you think plants need besides light? [1]")
    student.preferred_language = "es"
    student.username, student.email = "zqx-learner-7", "zqx@example.org"
    student.save()
    _q, reply = _post(
        conversation, student, "How do plants make food?", django_capture_on_commit_callbacks
    )
    reply.refresh_from_db()
    assert reply.status == Message.Status.DONE
    assert reply.mode == Message.Mode.ONLINE
    assert reply.text == "What do you think plants need besides light? [1]"
    assert reply.model == llm_server.model
    assert reply.prompt_version == "tutor_system.v1"
    assert reply.ttft_seconds is not None and reply.ttft_seconds >= 0
    assert reply.usage["outcome"] == "finished"
    # The server's own token counts, next to the context builder's estimate (which errs high).
    assert reply.completion_tokens == len(reply.text.split())
    assert 0 < reply.prompt_tokens <= reply.context_tokens_estimate
    # Only the passage the reply cites is its source; one clean label each.
    assert [c["n"] for c in reply.citations] == [1]
    assert reply.citations[0]["cited"] is True
    assert reply.citations[0]["label"] == "Photosynthesis — What photosynthesis does"
    # The learner reads Spanish; the model answered in English: the turn says so.
    assert reply.usage["language"] == {"expected": "es", "detected": "en", "matches": False}
    # ... and so do the call's ledger row and the course's usage page.
    assert LLMCall.objects.get(purpose="tutor").reply_language_matches is False
    tutor_usage = course_llm_usage(course=conversation.course)["features"][0]
    assert (tutor_usage.key, tutor_usage.total.language_checked) == ("tutor", 1)
    assert tutor_usage.total.language_other == 1
    assert streams.reply_stream_text(message_id=reply.pk) == reply.text

    body = llm_server.stats.last_request
    sent = "\n".join(m["content"] for m in body["messages"])
    assert body["messages"][0]["role"] == "system"
    assert "Reply in Spanish" in body["messages"][0]["content"]
    assert "<course_material>\n[1] Photosynthesis — What photosynthesis does" in sent
    assert "<student_message>\nHow do plants make food?\n</student_message>" in sent
    # No student identity goes to the model.
    for identity in (student.username, student.display_name, student.email):
        assert identity not in sent


def test_online_reply_includes_earlier_turns_and_memories(
    conversation,
    student,
    course,
    search,
    eager_tasks,
    django_capture_on_commit_callbacks,
    llm_server,
):
    Memory.objects.create(
        learner=student, course=course, summary="- Struggled with the Calvin cycle."
    )
    llm_server.script(reply="First answer.")
    _post(conversation, student, "First question", django_capture_on_commit_callbacks)
    llm_server.script(reply="Second answer.")
    _post(conversation, student, "Second question", django_capture_on_commit_callbacks)
    messages = llm_server.stats.last_request["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    # The earlier question is wrapped and defused like the new one.
    assert messages[1]["content"] == "<student_message>\nFirst question\n</student_message>"
    assert messages[2]["content"] == "First answer."
    assert "Struggled with the Calvin cycle" in messages[3]["content"]


def test_a_server_that_keeps_failing_fails_the_reply_with_a_retryable_message(
    conversation, student, search, eager_tasks, django_capture_on_commit_callbacks, llm_server
):
    llm_server.fail_next(10, status=503)
    question, reply = _post(
        conversation, student, "Explain ATP", django_capture_on_commit_callbacks
    )
    reply.refresh_from_db()
    assert reply.status == Message.Status.FAILED
    assert "not reachable" in reply.error
    assert Message.objects.get(pk=question.pk).text == "Explain ATP"  # never lost
    assert streams.reply_stream_text(message_id=reply.pk) == ""

    llm_server.reset()
    llm_server.script(reply="Here we go.")
    with django_capture_on_commit_callbacks(execute=True):
        conversations.reply_retry(reply=reply, learner=student)
    reply.refresh_from_db()
    assert reply.status == Message.Status.DONE
    assert reply.text == "Here we go."
    assert reply.error == ""


@pytest.mark.parametrize("mode", ["cut", "garbage", "abort"])
def test_a_broken_stream_fails_the_reply_and_keeps_what_arrived(
    conversation, student, search, eager_tasks, django_capture_on_commit_callbacks, llm_server, mode
):
    llm_server.script(reply="one two three four five six")
    llm_server.break_next(mode=mode, after_tokens=3)
    _q, reply = _post(conversation, student, "Count", django_capture_on_commit_callbacks)
    reply.refresh_from_db()
    assert reply.status == Message.Status.FAILED
    assert reply.text == "one two three "
    assert "cut off" in reply.error


@pytest.mark.django_db(transaction=True)  # the writing thread needs committed rows
def test_stop_keeps_the_partial_text_and_marks_the_reply_stopped(
    conversation, student, search, django_capture_on_commit_callbacks, llm_server, monkeypatch
):
    from tutor.conversation_tasks import reply_write

    monkeypatch.setattr("tutor.conversations._enqueue_reply", lambda pk: None)
    words = " ".join(f"w{i}" for i in range(200))
    llm_server.script(reply=words, tokens_per_second=50)
    _q, reply = message_post(conversation=conversation, learner=student, text="Go on")

    def write() -> None:
        try:
            reply_write(reply.pk)
        finally:
            connection.close()  # or the test database cannot be dropped at the end

    worker = threading.Thread(target=write)
    worker.start()
    deadline = time.monotonic() + 10
    while len(streams.reply_stream_text(message_id=reply.pk).split()) < 5:
        assert time.monotonic() < deadline, "no tokens arrived"
        time.sleep(0.02)
    conversations.reply_stop(reply=reply, learner=student)
    worker.join(timeout=10)
    reply.refresh_from_db()
    assert reply.status == Message.Status.STOPPED
    assert 5 <= len(reply.text.split()) < 200
    assert words.startswith(reply.text)
    assert reply.usage["outcome"] == "stopped"
    assert llm_server.stats.streams_completed == 0


def test_stopping_a_reply_that_waits_for_a_worker_stops_it_at_once(
    conversation, student, monkeypatch
):
    monkeypatch.setattr("tutor.conversations._enqueue_reply", lambda pk: None)
    _q, reply = message_post(conversation=conversation, learner=student, text="Hi")
    conversations.reply_stop(reply=reply, learner=student)
    reply.refresh_from_db()
    assert reply.status == Message.Status.STOPPED
    from tutor.conversation_tasks import reply_write

    assert reply_write(reply.pk) is None  # the task finds nothing to claim


def test_a_reply_is_claimed_once(conversation, student, search, monkeypatch):
    from tutor.conversation_tasks import reply_write

    monkeypatch.setattr("tutor.conversations._enqueue_reply", lambda pk: None)
    _q, reply = message_post(conversation=conversation, learner=student, text="Hi")
    assert reply_write(reply.pk) == Message.Status.DONE
    assert reply_write(reply.pk) is None
    assert streams.reply_stream_text(message_id=reply.pk).count("offline") == 1


def test_a_reply_whose_worker_vanished_is_failed_by_the_recovery_sweep(
    conversation, student, monkeypatch
):
    from datetime import timedelta

    from django.utils import timezone

    monkeypatch.setattr("tutor.conversations._enqueue_reply", lambda pk: None)
    _q, reply = message_post(conversation=conversation, learner=student, text="Hi")
    Message.objects.filter(pk=reply.pk).update(
        status=Message.Status.STREAMING, claimed_at=timezone.now() - timedelta(minutes=3)
    )
    streams.reply_stream_append(message_id=reply.pk, text="Half a rep")
    assert conversations.replies_recover()[0] == 0  # still in time

    Message.objects.filter(pk=reply.pk).update(claimed_at=timezone.now() - timedelta(hours=1))
    assert conversations.replies_recover()[0] == 1
    reply.refresh_from_db()
    assert reply.status == Message.Status.FAILED
    assert reply.text == "Half a rep"
    assert reply.error == conversations.STALE_MESSAGE


def test_a_reply_that_runs_past_its_time_limit_is_cut_short(
    conversation,
    student,
    search,
    eager_tasks,
    django_capture_on_commit_callbacks,
    llm_server,
    settings,
):
    settings.TUTOR_REPLY_MAX_SECONDS = 0.3
    llm_server.script(reply=" ".join(["word"] * 100), tokens_per_second=40)
    _q, reply = _post(conversation, student, "Talk", django_capture_on_commit_callbacks)
    reply.refresh_from_db()
    assert reply.status == Message.Status.FAILED
    assert "took too long" in reply.error
    assert 0 < len(reply.text.split()) < 100


# --- feedback --------------------------------------------------------------------------


def _finished_reply(conversation, text="An answer [1]."):
    Message.objects.create(conversation=conversation, role="user", text="Q")
    return Message.objects.create(
        conversation=conversation, role="assistant", text=text, status=Message.Status.DONE
    )


def test_feedback_is_recorded_and_replaced(conversation, student):
    reply = _finished_reply(conversation)
    conversations.feedback_record(reply=reply, learner=student, rating=1)
    conversations.feedback_record(reply=reply, learner=student, rating=-1, comment=" too long ")
    feedback = Feedback.objects.get()
    assert (feedback.rating, feedback.comment) == (-1, "too long")


@pytest.mark.parametrize("rating", [0, 2, -5])
def test_feedback_rating_is_plus_or_minus_one(conversation, student, rating):
    reply = _finished_reply(conversation)
    with pytest.raises(ValidationError):
        conversations.feedback_record(reply=reply, learner=student, rating=rating)


def test_only_the_learner_rates_their_replies(conversation, other_student):
    reply = _finished_reply(conversation)
    with pytest.raises(PermissionDenied):
        conversations.feedback_record(reply=reply, learner=other_student, rating=1)


def test_export_preferences_writes_jsonl_records_without_identity(conversation, student, tmp_path):

    from django.core.management import call_command

    reply = _finished_reply(conversation, text="Think about the inputs first.")
    conversations.feedback_record(reply=reply, learner=student, rating=-1, comment="vague")
    target = tmp_path / "prefs.jsonl"
    call_command("export_preferences", output=str(target))
    records = [json.loads(line) for line in target.read_text().splitlines()]
    assert len(records) == 1
    record = records[0]
    assert record["prompt"] == [{"role": "user", "content": "Q"}]
    assert record["reply"] == "Think about the inputs first."
    assert (record["rating"], record["comment"]) == (-1, "vague")
    assert student.username not in target.read_text()


# --- memory ----------------------------------------------------------------------------


def test_ending_a_conversation_offline_remembers_what_was_asked(
    conversation, student, course, eager_tasks, django_capture_on_commit_callbacks
):
    _finished_reply(conversation)
    Message.objects.create(conversation=conversation, role="user", text="What is the Calvin cycle?")
    with django_capture_on_commit_callbacks(execute=True):
        conversations.conversation_end(conversation=conversation, learner=student)
        conversations.conversation_end(conversation=conversation, learner=student)
    memory = Memory.objects.get()
    assert memory.learner == student and memory.course == course
    assert "What is the Calvin cycle?" in memory.summary


def test_online_memory_is_the_models_summary(
    conversation, student, eager_tasks, django_capture_on_commit_callbacks, llm_server
):
    llm_server.script(reply="- Worked on light reactions; confused ATP/NADPH.")
    _finished_reply(conversation)
    with django_capture_on_commit_callbacks(execute=True):
        conversations.conversation_end(conversation=conversation, learner=student)
    memory = Memory.objects.get()
    assert memory.summary == "- Worked on light reactions; confused ATP/NADPH."
    assert memory.prompt_version == "memory_summary.v1"
    assert memory.model == llm_server.model


def test_a_server_like_llama_cpp_python_still_gets_a_model_summary(
    conversation, student, eager_tasks, django_capture_on_commit_callbacks, llm_server
):
    # It refuses json_schema and sends no usage in streams: the notes are plain text, so
    # no structured-output form is asked for at all, and a long reply is cut here.
    llm_server.refused_formats = {"json_schema"}
    llm_server.stream_usage = False
    llm_server.script(reply="- Light reactions. " + "x" * 2000)
    _finished_reply(conversation)
    with django_capture_on_commit_callbacks(execute=True):
        conversations.conversation_end(conversation=conversation, learner=student)
    memory = Memory.objects.get()
    assert memory.summary.startswith("- Light reactions.")
    assert len(memory.summary) <= 800  # bounded here, not by the schema
    assert "response_format" not in llm_server.stats.last_request


def test_when_the_model_cannot_summarise_the_memory_is_the_offline_one(
    conversation, student, eager_tasks, django_capture_on_commit_callbacks, llm_server, settings
):
    settings.LLM_MAX_RETRIES = 0
    llm_server.fail_next(10, status=400, message="Unsupported parameter: 'max_tokens'")
    _finished_reply(conversation)
    with django_capture_on_commit_callbacks(execute=True):
        conversations.conversation_end(conversation=conversation, learner=student)
    memory = Memory.objects.get()
    assert memory.summary.startswith("Asked about: ")
    assert memory.prompt_version == "memory_offline.v1"


def test_starting_a_new_conversation_ends_the_previous_one(
    conversation, student, course, eager_tasks, django_capture_on_commit_callbacks
):
    _finished_reply(conversation)
    with django_capture_on_commit_callbacks(execute=True):
        conversations.conversation_start(course=course, learner=student)
    assert Memory.objects.filter(conversation=conversation).count() == 1


def test_a_learner_deletes_only_their_own_memories(student, other_student, course):
    mine = Memory.objects.create(learner=student, course=course, summary="mine")
    with pytest.raises(PermissionDenied):
        conversations.memory_delete(memory=mine, learner=other_student)
    conversations.memory_delete(memory=mine, learner=student)
    assert not Memory.objects.exists()


# --- consent and personalisation -------------------------------------------------------


def test_a_course_that_requires_consent_refuses_messages_until_it_is_given(
    conversation, student, course, monkeypatch
):
    from learners.consent import consent_record

    monkeypatch.setattr("tutor.conversations._enqueue_reply", lambda pk: None)
    course.requires_ai_consent = True
    course.save()
    with pytest.raises(ValidationError) as caught:
        message_post(conversation=conversation, learner=student, text="Hi")
    assert caught.value.code == "consent"
    assert not Message.objects.exists()
    consent_record(user=student, granted=True, given_by="learner")
    message_post(conversation=conversation, learner=student, text="Hi")
    assert Message.objects.count() == 2


def test_the_prompt_carries_level_goals_and_weakest_concepts(
    conversation,
    student,
    course,
    search,
    eager_tasks,
    django_capture_on_commit_callbacks,
    llm_server,
):
    from django.utils import timezone

    from learners.models import Concept, LearnerProfile
    from learning.models import ConceptMastery

    LearnerProfile.objects.create(
        user=student, level="advanced", goals="Pass the exam", onboarded_at=timezone.now()
    )
    weak = Concept.objects.create(course=course, name="Calvin cycle")
    strong = Concept.objects.create(course=course, name="Light reactions")
    ConceptMastery.objects.create(learner=student, concept=weak, probability=0.2, enough_data=True)
    ConceptMastery.objects.create(
        learner=student, concept=strong, probability=0.95, enough_data=True
    )
    _post(conversation, student, "Help", django_capture_on_commit_callbacks)
    system = llm_server.stats.last_request["messages"][0]["content"]
    assert "- Level: Advanced" in system
    assert "- Goals: Pass the exam" in system
    assert "Concepts they find hardest so far: Calvin cycle" in system
    assert "Light reactions" not in system


# --- with the real course material -----------------------------------------------------


@pytest.fixture
def demo_material(course):
    from pathlib import Path

    from material.models import Chunk
    from material.services import material_import_path, material_ingest

    folder = Path(__file__).resolve().parents[2] / "material" / "demo_material"
    for material in material_import_path(course=course, path=folder, enqueue=False):
        material_ingest(material_id=material.pk)
    assert Chunk.objects.filter(course=course).exists()
    return course


def test_offline_reply_cites_the_course_material_found_by_retrieval(
    conversation, student, demo_material, eager_tasks, django_capture_on_commit_callbacks
):
    from material.models import Chunk

    _q, reply = _post(
        conversation,
        student,
        "Where in the cell does photosynthesis happen?",
        django_capture_on_commit_callbacks,
    )
    reply.refresh_from_db()
    assert reply.status == Message.Status.DONE
    top = reply.citations[0]
    chunk = Chunk.objects.select_related("material").get(pk=top["chunk_id"])
    assert "chloroplast" in chunk.text.lower()
    assert top["title"] == chunk.material.title
    assert top["url"].endswith(f"#chunk-{chunk.pk}")
    assert "[1]" in reply.text and "Check your understanding" in reply.text


def test_online_reply_gives_the_model_the_retrieved_passages(
    conversation,
    student,
    demo_material,
    eager_tasks,
    django_capture_on_commit_callbacks,
    llm_server,
):
    _post(
        conversation,
        student,
        "What does the Calvin cycle make?",
        django_capture_on_commit_callbacks,
    )
    final = llm_server.stats.last_request["messages"][-1]["content"]
    material = final.split("<course_material>")[1].split("</course_material>")[0]
    assert material.lstrip().startswith("[1] ")
    assert "Calvin" in material


def test_offline_quotes_keep_a_tables_rows(passages):
    from dataclasses import replace

    from config.markdown import reply_html
    from tutor.replies import offline_reply_text

    table = (
        "| | Photosynthesis | Respiration |\n|---|---|---|\n| Where | Chloroplasts | Mitochondria |"
    )
    text = offline_reply_text(passages=[replace(passages[0], text=table)])
    assert "> |---|---|---|" in text
    assert "<td>Chloroplasts</td>" in reply_html(text=text)


def test_a_passive_sentence_is_not_taken_for_a_definition(passages):
    from dataclasses import replace

    from tutor.replies import check_question

    passage = replace(passages[0], text="The energy carried by the electrons is used to make ATP.")
    assert "what is the energy" not in check_question(passage)


def test_an_aligned_markdown_table_has_no_inline_style():
    from config.markdown import reply_html

    html = reply_html(text="| a | b | c |\n|:--|--:|:-:|\n| 1 | 2 | 3 |")
    assert "style=" not in html
    assert '<th class="align-left">a</th>' in html
    assert '<td class="align-right">2</td>' in html and '<td class="align-center">3</td>' in html


def test_a_message_too_long_for_the_model_fails_its_reply_with_shorten_your_message(
    conversation,
    student,
    search,
    eager_tasks,
    django_capture_on_commit_callbacks,
    llm_server,
    settings,
):
    settings.LLM_CONTEXT_TOKENS = 2048
    settings.LLM_MAX_TOKENS = 256
    question = "光合作用是植物利用光能的过程。" * 120  # 1,800 characters, 5,400 bytes
    _q, reply = _post(conversation, student, question, django_capture_on_commit_callbacks)
    reply.refresh_from_db()
    assert reply.status == Message.Status.FAILED
    assert "shorten your message" in reply.error
    assert llm_server.stats.chat_requests == 0  # refused before asking the model
    assert Message.objects.get(pk=_q.pk).text == question  # the message stays


def test_a_reply_that_cites_nothing_shows_related_passages_and_no_leaked_tags(
    conversation, student, search, eager_tasks, django_capture_on_commit_callbacks, llm_server
):
    llm_server.script(reply="Plants use light.\n</student_message>")
    _q, reply = _post(
        conversation, student, "How do plants make food?", django_capture_on_commit_callbacks
    )
    reply.refresh_from_db()
    assert reply.text == "Plants use light."
    assert reply.citations and not any(c["cited"] for c in reply.citations)
