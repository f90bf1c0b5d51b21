"""The OpenAI-compatible test server itself, driven over raw HTTP (no product code)."""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import time
from urllib.parse import urlsplit

import jsonschema
import pytest

from tests.llm_server import LLMTestServer, instance_from_schema, split_tokens


def post(server: LLMTestServer, path: str, body: dict) -> tuple[int, dict, bytes]:
    url = urlsplit(server.base_url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    try:
        connection.request(
            "POST", f"/v1{path}", json.dumps(body), {"content-type": "application/json"}
        )
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def get(server: LLMTestServer, path: str) -> tuple[int, bytes]:
    url = urlsplit(server.base_url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def sse_events(raw: bytes) -> list[str]:
    return [line[len("data: ") :] for line in raw.decode().split("\n\n") if line]


CHAT = {"model": "m", "messages": [{"role": "user", "content": "Hello there"}]}


def test_the_tokens_join_back_to_the_exact_text():
    text = "  Two  spaces,\nnew line\t<b>[1]</b> end "

    assert "".join(split_tokens(text)) == text


def test_it_lists_its_model_and_answers_health(llm_server_session):
    status, body = get(llm_server_session, "/v1/models")
    health, _ = get(llm_server_session, "/health")

    assert status == 200
    assert json.loads(body)["data"][0]["id"] == llm_server_session.model
    assert health == 200


def test_a_plain_completion_carries_the_reply_and_usage(llm_server):
    llm_server.script(reply="Four words right here")

    status, _, raw = post(llm_server, "/chat/completions", CHAT)
    body = json.loads(raw)

    assert status == 200
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {
        "role": "assistant",
        "content": "Four words right here",
    }
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["completion_tokens"] == 4
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + 4


def test_a_stream_is_chunks_then_usage_then_done(llm_server):
    llm_server.script(reply="a b c")

    status, headers, raw = post(
        llm_server,
        "/chat/completions",
        {**CHAT, "stream": True, "stream_options": {"include_usage": True}},
    )
    events = sse_events(raw)

    assert status == 200
    assert headers["content-type"].startswith("text/event-stream")
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    content = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert content == "a b c"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == 3


def test_a_stream_without_include_usage_has_no_usage_chunk(llm_server):
    _, _, raw = post(llm_server, "/chat/completions", {**CHAT, "stream": True})

    assert not any("usage" in json.loads(e) for e in sse_events(raw)[:-1])


def test_injected_failures_use_openai_error_bodies_then_stop(llm_server):
    llm_server.fail_next(2, status=429, retry_after=1)

    first = post(llm_server, "/chat/completions", CHAT)
    second = post(llm_server, "/chat/completions", CHAT)
    third = post(llm_server, "/chat/completions", CHAT)

    assert [first[0], second[0], third[0]] == [429, 429, 200]
    error = json.loads(first[2])["error"]
    assert error["type"] == "RateLimitError"
    assert error["code"] == 429
    assert error["message"]
    assert first[1]["retry-after"] == "1"
    assert llm_server.stats.chat_requests == 3


def test_a_cut_stream_has_no_finish_reason_and_no_done(llm_server):
    llm_server.script(reply="one two three four")
    llm_server.break_next(mode="cut", after_tokens=2)

    _, _, raw = post(llm_server, "/chat/completions", {**CHAT, "stream": True})
    events = sse_events(raw)

    assert "[DONE]" not in events
    assert all(json.loads(e)["choices"][0]["finish_reason"] is None for e in events)


def test_it_records_what_it_received(llm_server):
    post(llm_server, "/chat/completions", {**CHAT, "max_tokens": 5})

    assert llm_server.stats.last_request == {**CHAT, "max_tokens": 5}
    assert llm_server.chat_bodies == [{**CHAT, "max_tokens": 5}]
    llm_server.reset()
    assert llm_server.stats.chat_requests == 0
    assert llm_server.stats.last_request is None


def test_it_serves_fifty_slow_streams_at_once(llm_server):
    # 50 streams, each 0.3 s to first token then 20 tokens at 40/s (about 0.8 s alone):
    # served one at a time that would take 40 s.
    llm_server.script(reply="tok " * 20, ttft=0.3, tokens_per_second=40)
    body = {**CHAT, "stream": True}

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(lambda _: post(llm_server, "/chat/completions", body), range(50)))
    elapsed = time.monotonic() - started

    assert all(status == 200 for status, _, _ in results)
    assert all(sse_events(raw)[-1] == "[DONE]" for _, _, raw in results)
    assert llm_server.stats.peak_in_flight == 50
    assert llm_server.stats.streams_completed == 50
    assert elapsed < 20.0  # one at a time: 40 s; the margin is for a busy machine


SCHEMAS = [
    {"type": "integer", "minimum": -3, "maximum": 3},
    {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
    {"type": "string", "minLength": 80, "maxLength": 90},
    {"type": "array", "items": {"enum": [1, 2, 3]}, "minItems": 3, "maxItems": 3},
    {"type": ["string", "null"], "maxLength": 5},
    {"anyOf": [{"type": "null"}, {"type": "boolean"}]},
    {
        "type": "object",
        "$defs": {"criterion": {"type": "object", "properties": {"p": {"const": 2}}}},
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/$defs/criterion"}},
            "score": {"type": "integer", "minimum": 0, "maximum": 100, "multipleOf": 1},
        },
        "required": ["items", "score"],
        "additionalProperties": False,
    },
]


@pytest.mark.parametrize("schema", SCHEMAS)
def test_generated_json_satisfies_its_schema(schema):
    for seed in range(25):
        jsonschema.validate(instance_from_schema(schema, seed=seed), schema)


def test_json_schema_requests_get_generated_json(llm_server):
    schema = SCHEMAS[-1]
    body = {
        **CHAT,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "s", "schema": schema, "strict": True},
        },
    }

    _, _, raw = post(llm_server, "/chat/completions", body)

    jsonschema.validate(json.loads(json.loads(raw)["choices"][0]["message"]["content"]), schema)
