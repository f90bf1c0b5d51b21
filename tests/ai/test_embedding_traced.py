"""The embedder runs the model's transformer as a traced graph, and gives the vectors
sentence-transformers gives; a model the graph can't stand in for keeps the plain path."""

from __future__ import annotations

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.modules import Normalize, Pooling

from ai import embedding

TEXTS = [
    "",
    "cell",
    "What is the difference between mitosis and meiosis?",
    "Ünïcödé, emoji 🌱 and 数学 in one question?",
    "Photosynthesis turns light into chemical energy. " * 80,  # past the window: cut
    "A chunk of course material with a header.\n\n" + "The chloroplast holds chlorophyll. " * 12,
]


def _plain(texts: list[str]) -> np.ndarray:
    return embedding.embedding_model().encode(texts, normalize_embeddings=True)


def test_the_bundled_model_is_traced():
    embedding.embedding_model()
    assert embedding._traced is not None
    assert embedding._traced_inputs[:2] == ("input_ids", "attention_mask")


@pytest.mark.parametrize("batch_size", [1, 4, 64])
def test_traced_vectors_are_sentence_transformers_vectors(batch_size):
    vectors = embedding._encode(TEXTS * 3, batch_size=batch_size)
    assert vectors.dtype == np.float32
    assert vectors.shape == (len(TEXTS) * 3, 384)
    np.testing.assert_allclose(vectors, _plain(TEXTS * 3), atol=1e-5)


def test_a_query_gets_the_same_vector_alone_and_in_a_batch():
    alone = embedding.embed_texts([TEXTS[2]])
    together = embedding._encode(TEXTS, batch_size=64)
    np.testing.assert_allclose(alone[0], together[2], atol=1e-5)


def test_a_model_pooled_otherwise_keeps_the_plain_path():
    model = embedding.embedding_model()
    graph = embedding._traced
    cls_pooled = SentenceTransformer(
        modules=[model[0], Pooling(384, pooling_mode="cls"), Normalize()], device="cpu"
    )
    try:
        embedding._traced_load(cls_pooled)
        assert embedding._traced is None
    finally:
        embedding._traced_load(model)
    assert embedding._traced is not None and embedding._traced is not graph
