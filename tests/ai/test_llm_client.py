"""The LLM client against a real OpenAI-compatible server on loopback (tests/llm_server.py)."""

from __future__ import annotations

import base64
import copy
import json
import socket
import threading
import time

import pytest
from django.db import connection

from ai import llm, llm_capabilities
from ai.llm import (
    LLMBadResponse,
    LLMContextExceeded,
    LLMNotConfigured,
    LLMOutcome,
    LLMRequestRejected,
    LLMUnavailable,
    LLMUnsupported,
    chat_json,
    chat_stream,
    llm_is_configured,
    llm_is_reachable,
    user_message_with_image,
)

# Every call the client makes writes its row in the ledger (ai.ledger).
pytestmark = pytest.mark.django_db

MESSAGES = [
    {"role": "system", "content": "You are a patient tutor."},
    {"role": "user", "content": "What does a mitochondrion do?"},
]
GRADE_SCHEMA = {
    "type": "object",
    "properties": {
        "score": {"type": "integer", "minimum": 1, "maximum": 6},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "level": {"type": "string", "enum": ["low", "middle", "high"]},
        "comment": {"type": "string", "maxLength": 40},
        "criteria": {
            "type": "array",
            "minItems": 2,
            "maxItems": 4,
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "points": {"type": "integer", "minimum": 0, "maximum": 3},
                },
                "required": ["name", "points"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["score", "confidence", "level", "comment", "criteria"],
    "additionalProperties": False,
}


def wait_until(condition, timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- configuration ---------------------------------------------------------------------


def test_it_is_offline_without_a_base_url(settings):
    settings.LLM_BASE_URL = ""

    assert llm_is_configured() is False
    assert llm_is_reachable() is False
    with pytest.raises(LLMNotConfigured) as raised:
        chat_stream(messages=MESSAGES, prompt_version="tutor-v1")
    assert "offline" in str(raised.value)


def test_it_reaches_a_configured_server(llm_server):
    assert llm_is_configured() is True
    assert llm_is_reachable() is True


# --- streaming -------------------------------------------------------------------------


def test_streamed_text_is_exactly_the_scripted_reply(llm_server):
    reply = "Mitochondria make ATP [1]. <script>alert('x')</script> & more [2]."
    llm_server.script(reply=reply)

    stream = chat_stream(messages=MESSAGES, prompt_version="tutor-v1")
    deltas = list(stream)

    assert "".join(deltas) == reply
    assert len(deltas) > 1  # it really streamed, piece by piece
    assert stream.text == reply


def test_it_sends_the_messages_model_limits_and_asks_for_usage(llm_server, settings):
    settings.LLM_MAX_TOKENS = 321

    list(chat_stream(messages=MESSAGES, prompt_version="tutor-v1", temperature=0.2))

    sent = llm_server.stats.last_request
    assert sent["messages"] == MESSAGES
    assert sent["model"] == llm_server.model
    assert sent["max_tokens"] == 321
    assert sent["temperature"] == 0.2
    assert sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}
    assert llm_server.stats.last_headers["authorization"] == "Bearer test-key"


def test_a_finished_stream_records_usage_and_time_to_first_token(llm_server):
    llm_server.script(reply="one two three four", ttft=0.15, tokens_per_second=100)

    stream = chat_stream(messages=MESSAGES, prompt_version="tutor-v7")
    assert stream.usage is None
    list(stream)
    usage = stream.usage

    assert usage.outcome == LLMOutcome.FINISHED
    assert usage.finish_reason == "stop"
    assert usage.model == llm_server.model
    assert usage.prompt_version == "tutor-v7"
    assert usage.completion_tokens == 4
    assert usage.prompt_tokens > 0
    assert 0.15 <= usage.time_to_first_token_s < 1.0
    # Three more tokens at 100/s come after the first one.
    assert usage.total_s >= usage.time_to_first_token_s + 0.02
    assert usage.attempts == 1
    assert json.loads(json.dumps(usage.as_dict()))["outcome"] == "finished"


def test_a_reply_cut_by_max_tokens_says_length(llm_server):
    llm_server.script(reply="a b c d e f g h")

    stream = chat_stream(messages=MESSAGES, prompt_version="tutor-v1", max_tokens=3)

    assert "".join(stream) == "a b c "
    assert stream.usage.finish_reason == "length"
    assert stream.usage.outcome == LLMOutcome.FINISHED


def test_should_stop_closes_the_stream_and_keeps_the_partial_text(llm_server):
    words = [f"w{i} " for i in range(200)]
    llm_server.script(reply="".join(words), tokens_per_second=200)
    received: list[str] = []

    stream = chat_stream(
        messages=MESSAGES, prompt_version="tutor-v1", should_stop=lambda: len(received) >= 5
    )
    for delta in stream:
        received.append(delta)

    assert received == words[:5]
    assert stream.text == "".join(words[:5])
    assert stream.usage.outcome == LLMOutcome.STOPPED
    # The server never got to report usage: the client counts what it received (by
    # bytes here, an upper bound: the test server has no tokenizer endpoint).
    assert stream.usage.completion_tokens >= 5
    assert stream.usage.usage_source == "bytes"
    # Closing the HTTP stream is what makes vLLM stop generating.
    assert wait_until(lambda: llm_server.stats.client_disconnects == 1)
    assert llm_server.stats.streams_completed == 0


def test_a_consumer_that_breaks_out_leaves_a_stopped_record(llm_server):
    llm_server.script(reply="x " * 100, tokens_per_second=200)

    stream = chat_stream(messages=MESSAGES, prompt_version="tutor-v1")
    for _ in stream:
        break
    stream.close()

    assert stream.usage.outcome == LLMOutcome.STOPPED
    assert stream.text == "x "
    assert wait_until(lambda: llm_server.stats.client_disconnects == 1)


# --- retries ---------------------------------------------------------------------------


def test_it_retries_a_503_and_then_streams(llm_server, settings):
    settings.LLM_MAX_RETRIES = 3
    llm_server.script(reply="Back again.")
    llm_server.fail_next(2, status=503)

    stream = chat_stream(messages=MESSAGES, prompt_version="tutor-v1")

    assert "".join(stream) == "Back again."
    assert stream.usage.attempts == 3
    assert llm_server.stats.chat_requests == 3


@pytest.mark.parametrize("status", [429, 500])
def test_it_retries_rate_limits_and_server_errors_for_json(llm_server, settings, status):
    settings.LLM_MAX_RETRIES = 1
    llm_server.fail_next(1, status=status)

    data, usage = chat_json(
        messages=MESSAGES, schema=GRADE_SCHEMA, schema_name="grade", prompt_version="grade-v1"
    )

    assert usage.attempts == 2
    assert set(data) == set(GRADE_SCHEMA["required"])


def test_it_gives_up_after_the_retry_budget_with_a_student_safe_message(llm_server, settings):
    settings.LLM_MAX_RETRIES = 2
    llm_server.fail_next(3, status=503)

    stream = chat_stream(messages=MESSAGES, prompt_version="tutor-v1")
    with pytest.raises(LLMUnavailable) as raised:
        list(stream)

    assert llm_server.stats.chat_requests == 3
    error = raised.value
    assert str(error) == (
        "The tutor's language model is not reachable right now; try again in a minute."
    )
    assert "503" in error.detail
    assert error.usage.outcome == LLMOutcome.FAILED
    assert error.usage.attempts == 3
    assert stream.usage is error.usage


def test_it_does_not_retry_a_request_the_server_rejects(llm_server, settings):
    settings.LLM_MAX_RETRIES = 3
    llm_server.fail_next(1, status=400, message="This model's maximum context length is 8192.")

    with pytest.raises(LLMRequestRejected) as raised:
        list(chat_stream(messages=MESSAGES, prompt_version="tutor-v1"))

    assert raised.value.status_code == 400
    assert "maximum context length" in raised.value.detail
    assert llm_server.stats.chat_requests == 1


def test_a_prompt_over_the_context_is_permanent_with_a_shorten_message(llm_server, settings):
    settings.LLM_MAX_RETRIES = 3
    llm_server.fail_next(1, status=400, message="the request exceeds the available context size")

    with pytest.raises(LLMContextExceeded) as raised:
        list(chat_stream(messages=MESSAGES, prompt_version="tutor-v1"))

    assert raised.value.permanent
    assert "shorten your message" in str(raised.value)
    assert llm_server.stats.chat_requests == 1


def test_a_refused_parameter_is_permanent_and_not_retried(llm_server, settings):
    settings.LLM_MAX_RETRIES = 3
    llm_server.fail_next(3, status=400, message="Unsupported parameter: 'temperature'")

    with pytest.raises(LLMUnsupported) as raised:
        chat_json(messages=MESSAGES, schema=GRADE_SCHEMA, schema_name="grade", prompt_version="v1")

    assert raised.value.permanent
    # Each structured-output form is tried once (json_schema, the server's own form,
    # plain JSON), and no form is retried.
    assert llm_server.stats.chat_requests == 3


def test_a_server_that_refuses_json_schema_gets_its_own_form_and_is_remembered(
    llm_server, settings
):
    llm_server.refused_formats = {"json_schema"}

    data, usage = chat_json(
        messages=MESSAGES, schema=GRADE_SCHEMA, schema_name="grade", prompt_version="v1"
    )
    assert set(data) == set(GRADE_SCHEMA["required"])
    assert llm_server.stats.last_request["response_format"]["type"] == "json_object"
    assert llm_server.stats.last_request["response_format"]["schema"]["required"]
    assert llm_server.stats.chat_requests == 2

    chat_json(messages=MESSAGES, schema=GRADE_SCHEMA, schema_name="grade", prompt_version="v1")
    assert llm_server.stats.chat_requests == 3  # json_schema is not asked again


def test_a_server_with_no_structured_output_gets_plain_json_and_one_repair(llm_server, settings):
    llm_server.refused_formats = {"json_schema", "json_object"}
    valid = {"score": 3, "confidence": 0.5, "level": "low", "comment": "ok", "criteria": []}
    replies = iter(
        ["Sure! {not json", json.dumps({**valid, "criteria": [{"name": "a", "points": 1}] * 2})]
    )
    llm_server.script(reply=lambda body: next(replies))

    data, usage = chat_json(
        messages=MESSAGES, schema=GRADE_SCHEMA, schema_name="grade", prompt_version="v1"
    )

    assert data["score"] == 3
    last = llm_server.stats.last_request
    assert "response_format" not in last
    assert "JSON schema" in last["messages"][0]["content"]
    # The repair shows the model its reply and what was wrong: not the same question.
    assert last["messages"][-2] == {"role": "assistant", "content": "Sure! {not json"}
    assert "could not be used" in last["messages"][-1]["content"]
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0


def test_long_max_lengths_never_reach_the_server(llm_server):
    schema = {
        "type": "object",
        "properties": {"text": {"type": "string", "maxLength": 1500}},
        "required": ["text"],
    }
    chat_json(messages=MESSAGES, schema=schema, schema_name="t", prompt_version="v1")

    sent = llm_server.stats.last_request["response_format"]["json_schema"]["schema"]
    assert "maxLength" not in sent["properties"]["text"]


def test_a_line_break_written_raw_inside_a_string_is_taken_as_written(llm_server):
    # Strict JSON forbids control characters in strings; a small model under a grammar
    # engine writes them anyway.
    llm_server.script(json_reply='{"text": "two\nlines"}')
    schema = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
    data, _usage = chat_json(messages=MESSAGES, schema=schema, schema_name="t", prompt_version="v1")

    assert data == {"text": "two\nlines"}
    assert llm_server.stats.chat_requests == 1  # no repair asked for


def test_small_integer_ranges_reach_the_server_as_enums(llm_server):
    # llama-cpp-python's grammar ignores minimum/maximum; an enum binds every engine.
    llm_server.script(json_reply={"score": 3, "count": 70})
    schema = {
        "type": "object",
        "properties": {
            "score": {"type": "integer", "minimum": 1, "maximum": 6},
            "count": {"type": "integer", "minimum": 0, "maximum": 1000},
        },
        "required": ["score", "count"],
    }
    chat_json(messages=MESSAGES, schema=schema, schema_name="t", prompt_version="v1")

    sent = llm_server.stats.last_request["response_format"]["json_schema"]["schema"]
    assert sent["properties"]["score"]["enum"] == [1, 2, 3, 4, 5, 6]
    assert "enum" not in sent["properties"]["count"]  # too wide to spell out


def test_a_number_outside_its_bounds_is_bounded_not_a_failed_answer(llm_server):
    # What a grammar engine that ignores minimum/maximum lets through.
    llm_server.script(json_reply={"confidence": 2, "weights": [-0.5, 0.25]})
    schema = {
        "type": "object",
        "properties": {
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "weights": {"type": "array", "items": {"type": "number", "minimum": 0}},
        },
        "required": ["confidence", "weights"],
    }
    data, _usage = chat_json(messages=MESSAGES, schema=schema, schema_name="t", prompt_version="v1")

    assert data == {"confidence": 1, "weights": [0, 0.25]}
    assert llm_server.stats.chat_requests == 1  # no repair asked for


def test_a_stream_without_usage_is_counted_never_undercounted(llm_server):
    llm_server.stream_usage = False
    llm_server.script(reply="Это ответ на русском языке, 東京 です.")

    stream = chat_stream(messages=MESSAGES, prompt_version="tutor-v1")
    list(stream)

    assert stream.usage.usage_source == "bytes"
    assert stream.usage.completion_tokens >= len(stream.text.encode())
    assert stream.usage.prompt_tokens >= sum(len(m["content"].encode()) for m in MESSAGES)


def test_the_context_window_comes_from_the_server_when_it_says(llm_server, settings):
    settings.LLM_CONTEXT_TOKENS = 4096
    assert llm.llm_context_tokens() == 4096
    llm_server.max_model_len = 32768
    llm.capabilities_clear()
    assert llm.llm_context_tokens() == 32768


def test_stale_capabilities_serve_every_reply_while_one_probe_asks_again(llm_server, monkeypatch):
    llm_server.max_model_len = 8192
    llm.capabilities_clear()
    assert llm.llm_context_tokens() == 8192
    llm_server.max_model_len = 32768
    monkeypatch.setattr(llm_capabilities, "CACHE_SECONDS", 0.0)  # the answer is now stale
    probes: list[str] = []
    release = threading.Event()
    probe = llm_capabilities._probe

    def slow_probe(**kwargs):
        probes.append(kwargs["base_url"])
        assert release.wait(timeout=30)
        return probe(**kwargs)

    monkeypatch.setattr(llm_capabilities, "_probe", slow_probe)

    # A class of replies finds it stale at once: none waits for the server, one probe runs.
    assert [llm.llm_context_tokens() for _ in range(20)] == [8192] * 20
    assert len(probes) == 1
    release.set()
    deadline = time.monotonic() + 30
    while llm_capabilities._refreshing and time.monotonic() < deadline:
        time.sleep(0.01)
    monkeypatch.setattr(llm_capabilities, "CACHE_SECONDS", 300.0)
    assert llm.llm_context_tokens() == 32768  # the new answer, kept
    assert len(probes) == 1


def test_a_timeout_is_not_retried_at_once_behind_the_abandoned_request(llm_server, settings):
    # A one-slot CPU server keeps computing a request the client gave up on; asking again
    # at once would queue behind it. The caller (a job's backoff, the learner) retries.
    settings.LLM_MAX_RETRIES = 3
    settings.LLM_TIMEOUT_SECONDS = 0.3
    llm_server.script(ttft=1.0)

    with pytest.raises(LLMUnavailable) as raised:
        chat_json(messages=MESSAGES, schema=GRADE_SCHEMA, schema_name="grade", prompt_version="v1")

    assert not raised.value.permanent
    assert llm_server.stats.chat_requests == 1


def test_it_fails_fast_when_the_server_is_down(settings):
    settings.LLM_BASE_URL = f"http://127.0.0.1:{free_port()}/v1"
    settings.LLM_MAX_RETRIES = 2
    settings.LLM_RETRY_BACKOFF_SECONDS = 0.01

    started = time.monotonic()
    with pytest.raises(LLMUnavailable) as raised:
        list(chat_stream(messages=MESSAGES, prompt_version="tutor-v1"))

    assert time.monotonic() - started < 2.0
    assert raised.value.usage.attempts == 3
    assert llm_is_reachable() is False


# --- broken streams --------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["abort", "cut", "garbage", "error_event"])
def test_a_stream_broken_after_text_is_not_retried_and_keeps_the_partial_text(
    llm_server, settings, mode
):
    settings.LLM_MAX_RETRIES = 3
    llm_server.script(reply="First second third fourth fifth.")
    llm_server.break_next(mode=mode, after_tokens=2)
    received: list[str] = []

    stream = chat_stream(messages=MESSAGES, prompt_version="tutor-v1")
    with pytest.raises(LLMBadResponse) as raised:
        for delta in stream:
            received.append(delta)

    assert "".join(received) == "First second "
    assert raised.value.partial_text == "First second "
    assert raised.value.usage.outcome == LLMOutcome.FAILED
    assert raised.value.usage.time_to_first_token_s is not None
    assert llm_server.stats.chat_requests == 1


def test_a_connection_dropped_before_any_text_is_retried(llm_server, settings):
    settings.LLM_MAX_RETRIES = 1
    llm_server.script(reply="Recovered.")
    llm_server.break_next(mode="abort", after_tokens=0)

    stream = chat_stream(messages=MESSAGES, prompt_version="tutor-v1")

    assert "".join(stream) == "Recovered."
    assert stream.usage.attempts == 2


# --- concurrency -----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)  # the threads write ledger rows on their own connections
def test_requests_in_flight_never_exceed_the_concurrency_limit(llm_server, settings):
    settings.LLM_MAX_CONCURRENCY = 3
    llm_server.script(reply="slow reply here", ttft=0.2, tokens_per_second=50)
    results: list[str] = []
    errors: list[BaseException] = []

    def one_student() -> None:
        try:
            results.append("".join(chat_stream(messages=MESSAGES, prompt_version="tutor-v1")))
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=one_student) for _ in range(9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert errors == []
    assert results == ["slow reply here"] * 9
    assert llm_server.stats.peak_in_flight == 3


def test_waiting_too_long_for_a_slot_is_reported_as_busy(llm_server, settings):
    settings.LLM_MAX_CONCURRENCY = 1
    settings.LLM_TIMEOUT_SECONDS = 0.3
    llm_server.script(reply="a b c d e f", tokens_per_second=5)

    holder = chat_stream(messages=MESSAGES, prompt_version="tutor-v1")
    next(holder)  # holds the only slot while the slow reply streams
    with pytest.raises(LLMUnavailable) as raised:
        list(chat_stream(messages=MESSAGES, prompt_version="tutor-v1"))
    holder.close()

    assert "busy" in str(raised.value)
    assert llm_server.stats.chat_requests == 1


# --- structured output -----------------------------------------------------------------


def test_json_output_parses_and_respects_the_schema(llm_server):
    data, usage = chat_json(
        messages=MESSAGES, schema=GRADE_SCHEMA, schema_name="grade", prompt_version="grade-v2"
    )

    assert 1 <= data["score"] <= 6
    assert 0 <= data["confidence"] <= 1
    assert data["level"] in {"low", "middle", "high"}
    assert len(data["comment"]) <= 40
    assert 2 <= len(data["criteria"]) <= 4
    assert all(0 <= c["points"] <= 3 for c in data["criteria"])
    assert usage.outcome == LLMOutcome.FINISHED
    assert usage.prompt_version == "grade-v2"
    assert usage.completion_tokens > 0


def test_json_requests_ask_the_server_for_schema_constrained_output(llm_server):
    chat_json(messages=MESSAGES, schema=GRADE_SCHEMA, schema_name="grade", prompt_version="g1")

    sent = llm_server.stats.last_request
    # The schema as given, its small integer ranges spelt out as enums for grammar engines.
    expected = copy.deepcopy(GRADE_SCHEMA)
    expected["properties"]["score"]["enum"] = [1, 2, 3, 4, 5, 6]
    expected["properties"]["criteria"]["items"]["properties"]["points"]["enum"] = [0, 1, 2, 3]
    assert sent["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "grade", "schema": expected, "strict": True},
    }
    assert "stream" not in sent


def test_a_scripted_json_reply_comes_back_as_is(llm_server):
    scripted = {
        "score": 4,
        "confidence": 0.5,
        "level": "middle",
        "comment": "Clear.",
        "criteria": [{"name": "a", "points": 1}, {"name": "b", "points": 2}],
    }
    llm_server.script(json_reply=scripted)

    data, _ = chat_json(
        messages=MESSAGES, schema=GRADE_SCHEMA, schema_name="grade", prompt_version="g1"
    )

    assert data == scripted


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ("{not json", "not JSON"),
        (json.dumps({"score": 9}), "does not match"),
        (json.dumps({"score": 3, "confidence": 2.0}), "does not match"),
    ],
)
def test_json_that_is_malformed_or_off_schema_is_a_bad_response(llm_server, reply, reason):
    llm_server.script(json_reply=reply)

    with pytest.raises(LLMBadResponse) as raised:
        chat_json(messages=MESSAGES, schema=GRADE_SCHEMA, schema_name="grade", prompt_version="g")

    assert reason in raised.value.detail
    assert raised.value.partial_text == reply
    assert raised.value.usage.outcome == LLMOutcome.FAILED


def test_json_truncated_by_max_tokens_is_a_bad_response(llm_server):
    llm_server.script(json_reply='{"score": 3, "confidence": 0.5, "level": "low"}')

    with pytest.raises(LLMBadResponse) as raised:
        chat_json(
            messages=MESSAGES,
            schema=GRADE_SCHEMA,
            schema_name="grade",
            prompt_version="g",
            max_tokens=2,
        )

    assert "max_tokens" in raised.value.detail


# --- images ----------------------------------------------------------------------------


def test_an_image_message_reaches_the_server_as_a_data_url(llm_server):
    png = b"\x89PNG\r\n\x1a\nfake-image-bytes"
    message = user_message_with_image(text="What is in this diagram?", image=png)

    list(chat_stream(messages=[message], prompt_version="tutor-v1"))

    sent = llm_server.stats.last_request["messages"][0]
    assert sent["content"][0] == {"type": "text", "text": "What is in this diagram?"}
    url = sent["content"][1]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.split(",", 1)[1]) == png


def test_an_image_message_refuses_a_type_that_is_not_an_image():
    with pytest.raises(ValueError, match="not an image"):
        user_message_with_image(text="x", image=b"%PDF", mime_type="application/pdf")


def test_the_client_is_rebuilt_when_settings_change(llm_server, settings):
    list(chat_stream(messages=MESSAGES, prompt_version="v"))
    first = llm._runtime()
    settings.LLM_MAX_CONCURRENCY = 7

    second = llm._runtime()

    assert second is not first
    assert llm._runtime() is second


# --- against a real server (llama.cpp) ------------------------------------------------------


@pytest.mark.real_llm
def test_a_real_server_streams_with_usage_and_honours_a_schema(real_llm):
    stream = chat_stream(
        messages=[{"role": "user", "content": "Say hello in five words."}],
        prompt_version="contract-v1",
        max_tokens=32,
    )
    text = "".join(stream)

    assert text.strip()
    assert stream.usage.outcome == LLMOutcome.FINISHED
    assert stream.usage.completion_tokens > 0
    assert stream.usage.prompt_tokens > 0

    data, usage = chat_json(
        messages=[{"role": "user", "content": "Grade this essay: 'Cells use energy.'"}],
        schema=GRADE_SCHEMA,
        schema_name="grade",
        prompt_version="contract-v1",
        max_tokens=400,
    )
    assert 1 <= data["score"] <= 6
    assert usage.completion_tokens > 0
