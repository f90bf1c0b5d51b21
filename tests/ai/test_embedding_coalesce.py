"""Small embedding calls made at the same time by many threads (a class's tutor turns in
one worker) share encoder calls, and each caller still gets its own rows."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from ai import embedding

QUESTIONS = [f"How do plants turn light into sugar? (student {i})" for i in range(12)]
_ENCODE = embedding._encode  # the encoder itself, one call, before any test wraps it


def _alone(texts: list[str]) -> np.ndarray:
    return _ENCODE(texts)


def _wait_until(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.01)


@pytest.fixture
def held_encoder(monkeypatch):
    """The encoder, made to hold its first call until released (so that the other calls
    queue behind it meanwhile); records the texts of each call."""
    calls: list[list[str]] = []
    release = threading.Event()
    encode = embedding._encode

    def held(texts, **kwargs):
        calls.append(list(texts))
        if len(calls) == 1:
            release.wait(timeout=30)
        return encode(texts, **kwargs)

    monkeypatch.setattr(embedding, "_encode", held)
    return calls, release


def _run_in_threads(texts_per_call: list[list[str]], results: dict, errors: dict):
    def call(index: int, texts: list[str]) -> None:
        try:
            results[index] = embedding.embed_texts(texts)
        except Exception as error:  # noqa: BLE001 - the test looks at it
            errors[index] = error

    threads = [
        threading.Thread(target=call, args=[i, texts]) for i, texts in enumerate(texts_per_call)
    ]
    threads[0].start()
    return threads


def test_calls_made_while_the_encoder_is_busy_are_encoded_together(held_encoder):
    calls, release = held_encoder
    expected = _alone(QUESTIONS)
    per_call = [[QUESTIONS[0]], *[[q] for q in QUESTIONS[1:10]], QUESTIONS[10:12]]
    results: dict[int, np.ndarray] = {}
    errors: dict[int, Exception] = {}
    threads = _run_in_threads(per_call, results, errors)
    _wait_until(lambda: len(calls) == 1)  # the first call holds the encoder
    for thread in threads[1:]:
        thread.start()
    _wait_until(lambda: len(embedding._coalescer._queue) == len(per_call) - 1)
    release.set()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == {}
    # The first call alone, then everything that queued meanwhile in one call.
    assert calls == [[QUESTIONS[0]], QUESTIONS[1:12]]
    assert np.allclose(results[0], expected[0:1], atol=1e-5)
    for i in range(1, 10):
        assert results[i].shape == (1, expected.shape[1])
        assert np.allclose(results[i], expected[i : i + 1], atol=1e-5)
    assert np.allclose(results[10], expected[10:12], atol=1e-5)
    assert embedding._coalescer._busy is False


def test_a_failed_encoder_call_fails_its_callers_and_the_next_calls_still_work(monkeypatch):
    encode = embedding._encode

    def failing(texts, **kwargs):
        raise RuntimeError("the encoder broke")

    monkeypatch.setattr(embedding, "_encode", failing)
    with pytest.raises(RuntimeError, match="the encoder broke"):
        embedding.embed_texts(["a question"])
    monkeypatch.setattr(embedding, "_encode", encode)
    assert embedding._coalescer._busy is False
    vectors = embedding.embed_texts(["a question"])
    assert np.allclose(vectors, _alone(["a question"]), atol=1e-5)


def test_large_calls_are_encoded_on_their_own(monkeypatch):
    calls: list[int] = []
    encode = embedding._encode

    def counted(texts, **kwargs):
        calls.append(len(texts))
        return encode(texts, **kwargs)

    monkeypatch.setattr(embedding, "_encode", counted)
    texts = QUESTIONS[: embedding.COALESCE_MAX_TEXTS + 1]
    vectors = embedding.embed_texts(texts)
    assert calls == [len(texts)]
    assert vectors.shape == (len(texts), _alone(["x"]).shape[1])
    assert embedding._coalescer._queue == []
