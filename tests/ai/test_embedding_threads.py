"""The embedder uses EMBEDDING_THREADS torch threads in every thread of the process: web
requests and worker tasks embed from threads other than the one that loaded the model."""

from __future__ import annotations

import threading

import torch
from django.conf import settings

from ai import embedding


def test_every_thread_embeds_with_the_configured_number_of_threads():
    assert settings.EMBEDDING_THREADS == 1  # the default: one per web request or task
    seen: list[int] = []

    def request_thread():
        embedding.embed_texts(["how do plants make sugar"])
        seen.append(torch.get_num_threads())

    loader = threading.Thread(target=embedding.embedding_model)
    loader.start()
    loader.join()
    worker = threading.Thread(target=request_thread)
    worker.start()
    worker.join()
    assert seen == [settings.EMBEDDING_THREADS]
