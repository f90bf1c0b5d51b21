"""What the language model server at ``LLM_BASE_URL`` can do, learned from it, per server.

Servers that speak OpenAI's chat-completions API differ in what they support: vLLM takes
``response_format: json_schema`` and reports usage in streams; llama.cpp's ``llama-server``
does both too, but llama-cpp-python's server refuses ``json_schema`` (it takes
``json_object`` with a ``schema``) and ignores ``stream_options``; Ollama takes its own
``format``; a hosted API may have no tokenizer endpoint at all. The product does not assume
any of that. It asks the server once (cached for ``CACHE_SECONDS``) and learns the rest
from the server's answers:

- the **context window**: ``/v1/models`` ``max_model_len`` (vLLM) or ``/props``
  ``n_ctx`` (llama.cpp, per slot), else ``LLM_CONTEXT_TOKENS``;
- a **tokenizer**: ``POST /tokenize`` (llama.cpp ``{"content"}``, vLLM ``{"prompt"}``)
  to count tokens the server did not report, else an upper bound by UTF-8 bytes (a
  byte-level tokenizer never makes more tokens than bytes, so it never undercounts);
- the **structured-output form** that works (``json_schema`` → the server's own form →
  plain JSON validated here), remembered once a form has worked or been refused.

Nothing here is called in offline mode.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from typing import Any

logger = logging.getLogger(__name__)

CACHE_SECONDS = 300.0
# A server that did not answer its probe is asked again this soon (it may be starting).
UNANSWERED_CACHE_SECONDS = 15.0
PROBE_TIMEOUT_SECONDS = 3.0
# What a chat template adds around each message (role markers, separators): generous.
MESSAGE_OVERHEAD_TOKENS = 8

# The structured-output forms, best first. ``json_object_schema``: llama-cpp-python and
# llama.cpp's ``{"type": "json_object", "schema": ...}``; ``ollama_format``: Ollama's
# ``format``; ``plain``: no constraint, the schema in the prompt and the reply validated.
STRUCTURED_FORMS = ("json_schema", "json_object_schema", "ollama_format", "plain")


@dataclasses.dataclass
class Capabilities:
    base_url: str
    model: str
    kind: str = "openai-compatible"  # "vllm", "llama.cpp", "llama-cpp-python", "ollama"
    context_tokens: int | None = None
    tokenize_form: str | None = None  # "content" llama.cpp, "prompt" vLLM, "input" llama-cpp-python
    structured_form: str | None = None  # the form that worked last; None: not known yet
    refused_forms: set[str] = dataclasses.field(default_factory=set)
    probed_at: float = 0.0
    answered: bool = True  # False: /models did not answer; probed again soon

    @property
    def root_url(self) -> str:
        """The server's own root: ``LLM_BASE_URL`` less its ``/v1``."""
        url = self.base_url.rstrip("/")
        return url[: -len("/v1")] if url.endswith("/v1") else url

    def structured_forms(self) -> list[str]:
        """The forms to try, in order: the one known to work first."""
        forms = [
            f
            for f in STRUCTURED_FORMS
            if f not in self.refused_forms and (f != "ollama_format" or self.kind == "ollama")
        ]
        if self.structured_form in forms:
            forms.remove(self.structured_form)
            forms.insert(0, self.structured_form)
        return forms or ["plain"]

    def as_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["refused_forms"] = sorted(self.refused_forms)
        return data


_lock = threading.Lock()
_cache: dict[tuple[str, str], Capabilities] = {}
_refreshing: set[tuple[str, str]] = set()  # asked again in the background now


def capabilities_clear() -> None:
    """Forget what was learned (tests, or after the server changed)."""
    with _lock:
        _cache.clear()


def capabilities_for(*, base_url: str, model: str, api_key: str = "") -> Capabilities:
    """The server's capabilities, probed on first use and again after CACHE_SECONDS.

    Once the server has answered, a stale answer is still given while one background
    thread asks again: no reply waits for the probe's round trips before its request, and
    a class of students whose replies find it stale together sends one probe, not one each.
    """
    key = (base_url, model)
    with _lock:
        caps = _cache.get(key)
        if caps is not None:
            age = time.monotonic() - caps.probed_at
            if age < (CACHE_SECONDS if caps.answered else UNANSWERED_CACHE_SECONDS):
                return caps
            if caps.answered:
                if key not in _refreshing:
                    _refreshing.add(key)
                    threading.Thread(
                        target=_refresh,
                        kwargs={"base_url": base_url, "model": model, "api_key": api_key},
                        name="llm-capabilities",
                        daemon=True,
                    ).start()
                return caps
    return _probe_stored(base_url=base_url, model=model, api_key=api_key)


def _probe_stored(*, base_url: str, model: str, api_key: str) -> Capabilities:
    """Probe the server and keep its answer."""
    fresh = _probe(base_url=base_url, model=model, api_key=api_key)
    with _lock:
        known = _cache.get((base_url, model))
        if known is not None:
            # What the server taught us by answering stays learnt.
            fresh.structured_form = known.structured_form
            fresh.refused_forms = known.refused_forms
        _cache[(base_url, model)] = fresh
    return fresh


def _refresh(*, base_url: str, model: str, api_key: str) -> None:
    try:
        _probe_stored(base_url=base_url, model=model, api_key=api_key)
    except Exception:  # the stale answer stays; the next call after it tries again
        logger.exception("Could not ask the LLM server %s its capabilities again", base_url)
    finally:
        with _lock:
            _refreshing.discard((base_url, model))


class _Http:
    """Small JSON requests to the server with a short timeout (the standard library's
    urllib: the probes need nothing more)."""

    def __init__(self, api_key: str) -> None:
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    def __enter__(self) -> _Http:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def request(self, method: str, url: str, body: Any = None) -> tuple[int, Any]:
        data = None
        headers = dict(self.headers)
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310 - the configured server
        try:
            with urllib.request.urlopen(request, timeout=PROBE_TIMEOUT_SECONDS) as response:  # noqa: S310
                raw = response.read()
                status = response.status
        except urllib.error.HTTPError as error:
            return error.code, None
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode(errors="replace")


def _http(api_key: str) -> _Http:
    return _Http(api_key)


def _get_json(client: _Http, url: str) -> Any:
    try:
        status, data = client.request("GET", url)
    except Exception as error:  # noqa: BLE001 - a probe that fails teaches nothing
        logger.debug("LLM probe GET %s failed: %r", url, error)
        return None
    return data if status == 200 else None


def _probe(*, base_url: str, model: str, api_key: str) -> Capabilities:
    caps = Capabilities(base_url=base_url, model=model, probed_at=time.monotonic())
    with _http(api_key) as client:
        models = _get_json(client, f"{base_url.rstrip('/')}/models")
        if models is None:
            # Down or starting: learn nothing now (the call itself will say what is wrong).
            caps.answered = False
            return caps
        entries = models.get("data", []) if isinstance(models, dict) else []
        entry = next((e for e in entries if e.get("id") == model), entries[0] if entries else {})
        owned_by = str(entry.get("owned_by", "")).lower()
        meta = entry.get("meta")
        meta = meta if isinstance(meta, dict) else {}
        if entry.get("max_model_len"):
            caps.kind = "vllm"
            caps.context_tokens = int(entry["max_model_len"])
        elif owned_by == "llamacpp":
            caps.kind = "llama.cpp"
            if meta.get("n_ctx"):
                caps.context_tokens = int(meta["n_ctx"])
        elif owned_by in ("library", "ollama"):
            caps.kind = "ollama"
        elif owned_by == "me":
            caps.kind = "llama-cpp-python"
        if caps.kind in ("llama.cpp", "openai-compatible"):
            props = _get_json(client, f"{caps.root_url}/props")
            if isinstance(props, dict):
                settings = props.get("default_generation_settings") or {}
                # per slot: what one request can use when the server runs parallel slots
                n_ctx = settings.get("n_ctx") or props.get("n_ctx")
                if n_ctx:
                    caps.kind = "llama.cpp"
                    caps.context_tokens = int(n_ctx)
        if caps.kind == "openai-compatible":
            version = _get_json(client, f"{caps.root_url}/api/version")
            if isinstance(version, dict) and "version" in version:
                caps.kind = "ollama"
        forms = {
            "llama.cpp": ["content"],
            "vllm": ["prompt"],
            "llama-cpp-python": ["input"],
        }.get(caps.kind, [])
        if caps.kind == "openai-compatible":
            forms = ["content", "prompt", "input"]
        for form in forms:
            if _tokenize(client, caps, form, "probe") is not None:
                caps.tokenize_form = form
                break
    if caps.kind == "llama-cpp-python":
        # It answers json_schema with HTTP 500: go straight to its own form.
        caps.refused_forms.add("json_schema")
    logger.info("LLM server capabilities: %s", caps.as_dict())
    return caps


def _tokenize(client: _Http, caps: Capabilities, form: str, text: str) -> int | None:
    """The tokens of ``text`` by the server's tokenizer: llama.cpp ``POST /tokenize
    {"content"}``, vLLM ``POST /tokenize {"prompt"}``, llama-cpp-python ``POST
    /extras/tokenize/count {"input"}``; None when the server has no such endpoint."""
    body: dict[str, Any] = {form: text}
    path = "/tokenize"
    if form == "prompt":
        body["model"] = caps.model
        body["add_special_tokens"] = False
    elif form == "input":
        path = "/extras/tokenize/count"
    try:
        status, data = client.request("POST", f"{caps.root_url}{path}", body)
        if status != 200:
            return None
    except Exception as error:  # noqa: BLE001
        logger.debug("LLM tokenize failed: %r", error)
        return None
    if isinstance(data, dict):
        if isinstance(data.get("count"), int):
            return data["count"]
        if isinstance(data.get("tokens"), list):
            return len(data["tokens"])
    return None


def bytes_bound(text: str) -> int:
    """Tokens ``text`` can take at most: a byte-level tokenizer makes at most one per byte.

    Measured with SmolLM2's tokenizer (49k vocabulary, English-centred) on Django's own
    translations: tokens per UTF-8 byte 0.36 (French), 0.38 (Spanish), 0.44 (Russian),
    0.57 (Chinese), 0.85 (Korean), 0.96 (Armenian), 0.99 (Telugu); digits and rare
    symbols are one token per byte in English too. Any fraction of the bytes would
    undercount some language, so the bound is the bytes themselves.
    """
    return len(text.encode("utf-8"))


def tokens_count(
    caps: Capabilities | None, texts: Iterable[str], *, api_key: str = ""
) -> tuple[int, str]:
    """The tokens in ``texts`` (summed) and how they were counted: ``"tokenizer"`` (the
    server's own) or ``"bytes"`` (an upper bound)."""
    texts = [t for t in texts if t]
    if caps is not None and caps.tokenize_form and texts:
        # One request for all of them (a busy single-slot server answers each in turn);
        # the separators cost what the chat template's own separators would.
        with _http(api_key) as client:
            counted = _tokenize(client, caps, caps.tokenize_form, "\n".join(texts))
        if counted is not None:
            return counted, "tokenizer"
    return sum(bytes_bound(t) for t in texts), "bytes"


def message_texts(messages: Iterable[Mapping[str, Any]]) -> list[str]:
    """The text of chat messages (the text parts of multi-part ones)."""
    texts = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts.extend(
                str(part.get("text", "")) for part in content if part.get("type") == "text"
            )
    return texts


def prompt_tokens_count(
    caps: Capabilities | None, messages: list[Mapping[str, Any]], *, api_key: str = ""
) -> tuple[int, str]:
    """The prompt tokens of ``messages`` with the chat template's overhead per message."""
    counted, source = tokens_count(caps, message_texts(messages), api_key=api_key)
    return counted + MESSAGE_OVERHEAD_TOKENS * len(messages), source
