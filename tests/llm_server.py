"""A small OpenAI-compatible chat server on loopback, for tests and benchmarks.

It speaks the wire protocol the product's client speaks to vLLM: ``POST
/v1/chat/completions`` (JSON, or server-sent ``chat.completion.chunk`` events ending in an
optional usage chunk and ``data: [DONE]``), ``GET /v1/models`` and ``GET /health``. Tests
script the reply and its pace, inject HTTP errors and broken streams, and read counters of
what the product sent.

It is a bare ASGI app on uvicorn in a background thread with its own event loop, so one
server holds many slow streaming connections at once (the tutor benchmark runs 50
students together) while the test drives it from ordinary synchronous code.

The module is named so that pytest does not collect it; ``llm_server_session`` and
``llm_server`` are pytest fixtures for a conftest to expose (``pytest_plugins``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import copy
import dataclasses
import json
import logging
import random
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, Literal

import pytest
import uvicorn

DEFAULT_MODEL = "llm-test-model"
DEFAULT_REPLY = "Let's work through it together. What do you already know about this topic?"

Reply = str | Callable[[dict[str, Any]], str]
BreakMode = Literal["garbage", "cut", "abort", "error_event"]

_HTTP_ERROR_TYPES = {
    400: "BadRequestError",
    401: "AuthenticationError",
    404: "NotFoundError",
    429: "RateLimitError",
    500: "InternalServerError",
    502: "BadGatewayError",
    503: "ServiceUnavailableError",
    504: "GatewayTimeoutError",
}
# Words with their trailing whitespace: joining the pieces gives back the text exactly.
_TOKEN_RE = re.compile(r"\s+|\S+\s*")
_ABORT_LOG_MESSAGE = "ASGI callable returned without completing response."
# A long benchmark sends many thousands of requests; keep only the recent bodies.
_BODIES_KEPT = 1000


def split_tokens(text: str) -> list[str]:
    """The pieces the server streams, one per chunk (a word with its trailing space)."""
    return _TOKEN_RE.findall(text)


@dataclasses.dataclass(frozen=True)
class ServerStats:
    requests: int
    chat_requests: int
    in_flight: int
    peak_in_flight: int
    streams_completed: int
    client_disconnects: int
    last_request: dict[str, Any] | None
    last_headers: dict[str, str] | None


@dataclasses.dataclass
class _Script:
    reply: Reply = DEFAULT_REPLY
    json_reply: dict[str, Any] | str | None = None
    ttft: float = 0.0
    tokens_per_second: float | None = None


@dataclasses.dataclass
class _Failure:
    status: int
    message: str
    retry_after: float | None


@dataclasses.dataclass
class _Break:
    mode: BreakMode
    after_tokens: int


class _AbortConnection(Exception):
    """Raised inside the app to make uvicorn drop the connection mid-body."""


class _QuietAbortFilter(logging.Filter):
    # A deliberately dropped stream is the point of the test, not an error worth a log line.
    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != _ABORT_LOG_MESSAGE


class LLMTestServer:
    """An OpenAI-compatible server on 127.0.0.1; use as a context manager or start()/stop().

    Control methods are thread-safe and take effect for requests that start afterwards.
    """

    def __init__(self, *, model: str = DEFAULT_MODEL, host: str = "127.0.0.1", port: int = 0):
        self.model = model
        self._host = host
        self._port = port
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._server: uvicorn.Server | None = None
        self._sock: socket.socket | None = None
        self.reset()

    # --- lifecycle ---------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The URL a client takes as its base, ending in ``/v1``."""
        if self._sock is None:
            raise RuntimeError("The LLM test server is not running.")
        host, port = self._sock.getsockname()[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> LLMTestServer:
        if self._thread is not None:
            return self
        logging.getLogger("uvicorn.error").addFilter(_QuietAbortFilter())
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((self._host, self._port))
        self._sock.listen(1024)
        config = uvicorn.Config(
            self._app,
            interface="asgi3",
            lifespan="off",
            access_log=False,
            log_level="warning",
            timeout_keep_alive=30,
            backlog=1024,
        )
        self._server = uvicorn.Server(config)
        sockets = [self._sock]
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._server.serve(sockets=sockets)),
            name="llm-test-server",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("The LLM test server did not start.")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        if self._thread is None or self._server is None:
            return
        self._server.should_exit = True
        # Open streams would otherwise hold a graceful shutdown for as long as they last.
        self._server.force_exit = True
        self._thread.join(timeout=10)
        self._thread = None
        self._server = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> LLMTestServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- control -----------------------------------------------------------------------

    def reset(self) -> None:
        """Back to the default script with no pending failures; counters start from zero."""
        with self._lock:
            self._script = _Script()
            self._failures: list[_Failure] = []
            self._breaks: list[_Break] = []
            self._requests = 0
            self._chat_requests = 0
            self._in_flight = 0
            self._peak_in_flight = 0
            self._streams_completed = 0
            self._client_disconnects = 0
            self._last_request: dict[str, Any] | None = None
            self._last_headers: dict[str, str] | None = None
            self._bodies: collections.deque[dict[str, Any]] = collections.deque(maxlen=_BODIES_KEPT)
            self._seed = 0
            self.max_model_len: int | None = None
            # What a server like llama-cpp-python does: refuse some structured-output
            # forms (with HTTP 500) and send no usage in streams.
            self.refused_formats: set[str] = set()
            self.stream_usage = True

    def script(
        self,
        *,
        reply: Reply | None = None,
        json_reply: dict[str, Any] | str | None = None,
        ttft: float | None = None,
        tokens_per_second: float | None = None,
    ) -> None:
        """Set what later chat requests get.

        ``reply`` is the text (or a function of the request body returning it).
        ``json_reply`` answers requests with a JSON-schema ``response_format``: a dict is
        sent as JSON, a string verbatim (to send invalid JSON); unset, the server generates
        an object that satisfies the schema. ``ttft`` is seconds before the first token;
        ``tokens_per_second`` paces the rest (unset: as fast as possible).
        """
        with self._lock:
            if reply is not None:
                self._script.reply = reply
            if json_reply is not None:
                self._script.json_reply = json_reply
            if ttft is not None:
                self._script.ttft = ttft
            if tokens_per_second is not None:
                self._script.tokens_per_second = tokens_per_second

    def fail_next(
        self,
        n: int = 1,
        *,
        status: int = 503,
        message: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        """Answer the next ``n`` chat requests with an OpenAI-style error of ``status``."""
        failure = _Failure(
            status=status,
            message=message or f"Injected test failure ({status}).",
            retry_after=retry_after,
        )
        with self._lock:
            self._failures.extend([failure] * n)

    def break_next(self, n: int = 1, *, mode: BreakMode = "cut", after_tokens: int = 2) -> None:
        """Break the next ``n`` streamed replies after ``after_tokens`` content chunks.

        ``garbage`` sends a line that is not JSON; ``cut`` ends the body cleanly but with
        no finish reason, usage or ``[DONE]``; ``abort`` drops the connection mid-body;
        ``error_event`` sends an in-stream ``{"error": ...}`` event as vLLM does.
        """
        with self._lock:
            self._breaks.extend([_Break(mode=mode, after_tokens=after_tokens)] * n)

    @property
    def stats(self) -> ServerStats:
        with self._lock:
            return ServerStats(
                requests=self._requests,
                chat_requests=self._chat_requests,
                in_flight=self._in_flight,
                peak_in_flight=self._peak_in_flight,
                streams_completed=self._streams_completed,
                client_disconnects=self._client_disconnects,
                last_request=copy.deepcopy(self._last_request),
                last_headers=dict(self._last_headers) if self._last_headers else None,
            )

    @property
    def chat_bodies(self) -> list[dict[str, Any]]:
        """The chat request bodies received since the last reset (the last 1000), oldest first."""
        with self._lock:
            return copy.deepcopy(list(self._bodies))

    # --- the ASGI app ------------------------------------------------------------------

    async def _app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        with self._lock:
            self._requests += 1
            self._in_flight += 1
            self._peak_in_flight = max(self._peak_in_flight, self._in_flight)
        try:
            await self._route(scope, receive, send)
        finally:
            with self._lock:
                self._in_flight -= 1

    async def _route(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        method, path = scope["method"], scope["path"].rstrip("/")
        if method == "GET" and path == "/health":
            await _send_json(send, 200, {})
        elif method == "GET" and path == "/v1/models":
            await _send_json(send, 200, self._models_body())
        elif method == "POST" and path == "/v1/chat/completions":
            await self._chat(scope, receive, send)
        else:
            await _send_error(send, 404, f"No route for {method} {path}.")

    def _models_body(self) -> dict[str, Any]:
        return {
            "object": "list",
            "data": [
                {
                    "id": self.model,
                    "object": "model",
                    "created": int(time.time()),
                    "owned_by": "llm-test-server",
                    # vLLM says its context window; None leaves the product to its setting
                    **({"max_model_len": self.max_model_len} if self.max_model_len else {}),
                }
            ],
        }

    async def _chat(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        raw = await _read_body(receive)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            await _send_error(send, 400, "The request body is not JSON.")
            return
        with self._lock:
            self._chat_requests += 1
            self._last_request = body
            self._last_headers = headers
            self._bodies.append(body)
            failure = self._failures.pop(0) if self._failures else None
            script = dataclasses.replace(self._script)
            self._seed += 1
            seed = self._seed
        if failure is not None:
            extra = []
            if failure.retry_after is not None:
                extra.append((b"retry-after", str(failure.retry_after).encode()))
            await _send_error(send, failure.status, failure.message, extra_headers=extra)
            return
        if not isinstance(body.get("messages"), list) or not body["messages"]:
            await _send_error(send, 400, "messages must be a non-empty list.")
            return
        requested_format = (body.get("response_format") or {}).get("type")
        if requested_format in self.refused_formats:
            await _send_error(send, 500, f"response_format type {requested_format} unsupported")
            return

        text = self._reply_text(body, script, seed)
        tokens = split_tokens(text)
        finish_reason = "stop"
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
        if isinstance(max_tokens, int) and len(tokens) > max_tokens:
            tokens, finish_reason = tokens[:max_tokens], "length"
        prompt_tokens = _count_prompt_tokens(body["messages"])
        if body.get("stream"):
            with self._lock:
                brk = self._breaks.pop(0) if self._breaks else None
            await self._stream(
                receive, send, body, script, tokens, finish_reason, prompt_tokens, brk
            )
        else:
            await asyncio.sleep(script.ttft + _pace(script) * max(len(tokens) - 1, 0))
            await _send_json(
                send,
                200,
                {
                    "id": _completion_id(),
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": self.model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": "".join(tokens)},
                            "logprobs": None,
                            "finish_reason": finish_reason,
                        }
                    ],
                    "usage": _usage(prompt_tokens, len(tokens)),
                },
            )

    def _reply_text(self, body: dict[str, Any], script: _Script, seed: int) -> str:
        response_format = body.get("response_format") or {}
        if response_format.get("type") == "json_schema":
            if script.json_reply is not None:
                if isinstance(script.json_reply, str):
                    return script.json_reply
                return json.dumps(script.json_reply)
            schema = (response_format.get("json_schema") or {}).get("schema") or {}
            return json.dumps(instance_from_schema(schema, seed=seed))
        if response_format.get("type") == "json_object":
            if script.json_reply is not None:
                if isinstance(script.json_reply, str):
                    return script.json_reply
                return json.dumps(script.json_reply)
            if response_format.get("schema"):
                return json.dumps(instance_from_schema(response_format["schema"], seed=seed))
            return "{}"
        reply = script.reply
        return reply(body) if callable(reply) else reply

    async def _stream(
        self,
        receive: Any,
        send: Any,
        body: dict[str, Any],
        script: _Script,
        tokens: list[str],
        finish_reason: str,
        prompt_tokens: int,
        brk: _Break | None,
    ) -> None:
        disconnected = asyncio.Event()

        async def watch_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            disconnected.set()

        watcher = asyncio.create_task(watch_disconnect())
        completion_id, created = _completion_id(), int(time.time())

        def chunk(delta: dict[str, Any], reason: str | None = None) -> bytes:
            event = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": self.model,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}
                ],
            }
            return _sse(event)

        async def emit(data: bytes) -> bool:
            if disconnected.is_set():
                return False
            await send({"type": "http.response.body", "body": data, "more_body": True})
            return True

        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"text/event-stream; charset=utf-8"),
                        (b"cache-control", b"no-cache"),
                    ],
                }
            )
            if not await emit(chunk({"role": "assistant", "content": ""})):
                return self._count_disconnect()
            await _sleep_unless(disconnected, script.ttft)
            pace = _pace(script)
            for index, token in enumerate(tokens):
                if brk is not None and index == brk.after_tokens:
                    await self._break_stream(send, brk)
                    return
                if index and pace:
                    await _sleep_unless(disconnected, pace)
                if not await emit(chunk({"content": token})):
                    return self._count_disconnect()
            if brk is not None:
                await self._break_stream(send, brk)
                return
            if not await emit(chunk({}, finish_reason)):
                return self._count_disconnect()
            if self.stream_usage and (body.get("stream_options") or {}).get("include_usage"):
                usage_event = {
                    "id": completion_id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": self.model,
                    "choices": [],
                    "usage": _usage(prompt_tokens, len(tokens)),
                }
                await emit(_sse(usage_event))
            await emit(b"data: [DONE]\n\n")
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            with self._lock:
                self._streams_completed += 1
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def _break_stream(self, send: Any, brk: _Break) -> None:
        if brk.mode == "garbage":
            await send(
                {"type": "http.response.body", "body": b"data: {not json\n\n", "more_body": True}
            )
        elif brk.mode == "error_event":
            error = {"error": _error_object(500, "Injected error in the stream.")}
            await send({"type": "http.response.body", "body": _sse(error), "more_body": True})
        elif brk.mode == "abort":
            # Returning without the last body message makes uvicorn close the transport:
            # the client sees a chunked body that never ends, as when a server dies.
            return
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    def _count_disconnect(self) -> None:
        with self._lock:
            self._client_disconnects += 1


# --- JSON from a schema ----------------------------------------------------------------


def instance_from_schema(schema: dict[str, Any], *, seed: int = 0) -> Any:
    """A value that satisfies ``schema`` (the subset structured outputs use)."""
    return _generate(schema, root=schema, rng=random.Random(seed), depth=0)


def _generate(schema: dict[str, Any], *, root: dict[str, Any], rng: random.Random, depth: int):
    if depth > 20:
        raise ValueError("The schema nests too deeply (or refers to itself without end).")
    if "$ref" in schema:
        return _generate(_resolve(schema["$ref"], root), root=root, rng=rng, depth=depth + 1)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return rng.choice(schema["enum"])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
            return _generate(options[0], root=root, rng=rng, depth=depth + 1)
    if "allOf" in schema:
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            merged.update(part)
        return _generate(merged, root=root, rng=rng, depth=depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "string"
    if kind == "object":
        properties = schema.get("properties", {})
        return {
            name: _generate(sub, root=root, rng=rng, depth=depth + 1)
            for name, sub in properties.items()
        }
    if kind == "array":
        low = schema.get("minItems", 1)
        high = max(low, min(schema.get("maxItems", low + 2), low + 2))
        items = schema.get("items", {"type": "string"})
        return [
            _generate(items, root=root, rng=rng, depth=depth + 1)
            for _ in range(rng.randint(low, high))
        ]
    if kind == "integer":
        low, high = _number_bounds(schema, integer=True)
        return rng.randint(int(low), int(high))
    if kind == "number":
        low, high = _number_bounds(schema, integer=False)
        return round(rng.uniform(low, high), 3) if high > low else low
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "null":
        return None
    return _string(schema, rng)


def _resolve(ref: str, root: dict[str, Any]) -> dict[str, Any]:
    if not ref.startswith("#/"):
        raise ValueError(f"Only local $ref is supported, not {ref!r}.")
    node: Any = root
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _number_bounds(schema: dict[str, Any], *, integer: bool) -> tuple[float, float]:
    step = 1 if integer else 0.001
    low = schema.get("minimum", 0)
    high = schema.get("maximum", max(low, 0) + 100)
    if "exclusiveMinimum" in schema:
        low = schema["exclusiveMinimum"] + step
    if "exclusiveMaximum" in schema:
        high = schema["exclusiveMaximum"] - step
    if integer:
        low, high = int(-(-low // 1)), int(high // 1)
    if high < low:
        raise ValueError(f"No number fits between {low} and {high}.")
    return low, high


_WORDS = ("the", "student", "explains", "an", "idea", "clearly", "with", "one", "example")


def _string(schema: dict[str, Any], rng: random.Random) -> str:
    low = schema.get("minLength", 0)
    high = schema.get("maxLength", max(low, 60))
    text = " ".join(rng.choice(_WORDS) for _ in range(8))
    if len(text) < low:
        text = (text + " ") * (low // max(len(text), 1) + 1)
    return text[:high].ljust(low, "x")


# --- small helpers ---------------------------------------------------------------------


def _pace(script: _Script) -> float:
    return 1.0 / script.tokens_per_second if script.tokens_per_second else 0.0


async def _sleep_unless(event: asyncio.Event, seconds: float) -> None:
    if seconds > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout=seconds)


def _count_prompt_tokens(messages: list[Any]) -> int:
    count = 0
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            count += len(split_tokens(content))
        elif isinstance(content, list):
            for part in content:
                if part.get("type") == "text":
                    count += len(split_tokens(part.get("text", "")))
                elif part.get("type") == "image_url":
                    count += 256  # a fixed image cost, like a vision encoder's patch count
        count += 4  # role and separators
    return count


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def _sse(event: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(event, separators=(",", ":")).encode() + b"\n\n"


def _error_object(status: int, message: str) -> dict[str, Any]:
    return {
        "message": message,
        "type": _HTTP_ERROR_TYPES.get(status, "APIError"),
        "param": None,
        "code": status,
    }


async def _read_body(receive: Any) -> bytes:
    parts = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        parts.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(parts)


async def _send_json(
    send: Any,
    status: int,
    payload: dict[str, Any],
    *,
    extra_headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    data = json.dumps(payload).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(data)).encode()),
        *(extra_headers or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data, "more_body": False})


async def _send_error(
    send: Any,
    status: int,
    message: str,
    *,
    extra_headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    await _send_json(
        send, status, {"error": _error_object(status, message)}, extra_headers=extra_headers
    )


# --- pytest fixtures -------------------------------------------------------------------


@pytest.fixture(scope="session")
def llm_server_session() -> Iterator[LLMTestServer]:
    """One LLM test server for the whole session (starting one per test would be slow)."""
    with LLMTestServer() as server:
        yield server


@pytest.fixture
def llm_server(llm_server_session: LLMTestServer, settings: Any) -> Iterator[LLMTestServer]:
    """The session's LLM test server, reset, with the LLM_* settings pointing at it."""
    from ai.llm_capabilities import capabilities_clear

    llm_server_session.reset()
    capabilities_clear()  # what the product learnt of the server was for the last test
    settings.LLM_BASE_URL = llm_server_session.base_url
    settings.LLM_MODEL = llm_server_session.model
    settings.LLM_API_KEY = "test-key"
    # Retries back off for real; a test of them should not wait seconds.
    settings.LLM_RETRY_BACKOFF_SECONDS = 0.01
    yield llm_server_session
    llm_server_session.reset()
