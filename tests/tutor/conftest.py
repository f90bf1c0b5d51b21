"""Fixtures of the tutor's conversation tests."""

from __future__ import annotations

import pytest

from tests.tutor.asgi import asgi_server, asgi_server_session  # noqa: F401

PHOTOSYNTHESIS = (
    "Photosynthesis is the process by which green plants, algae and some bacteria turn "
    "light energy into chemical energy stored in sugar. The oxygen we breathe is a "
    "by-product of this process."
)
CHLOROPLAST = (
    "Photosynthesis takes place inside chloroplasts, small organelles found mainly in the "
    "cells of leaves. The green pigment chlorophyll sits in the thylakoid membranes."
)


@pytest.fixture(autouse=True)
def _reply_streams_cleaned(clean_reply_streams):
    """Every conversation test starts without reply streams left in Redis."""


@pytest.fixture
def passages():
    from tutor.context import Passage

    return [
        Passage(
            n=1,
            chunk_id=11,
            text=PHOTOSYNTHESIS,
            title="Photosynthesis",
            section="What photosynthesis does",
            url="/courses/1/#chunk-11",
        ),
        Passage(
            n=2,
            chunk_id=12,
            text=CHLOROPLAST,
            title="Photosynthesis",
            section="Where it happens: the chloroplast",
            page=2,
            url="/courses/1/#chunk-12",
        ),
    ]


@pytest.fixture
def search(monkeypatch, passages):
    """Course search answering with ``passages`` (set ``search.results`` to change it)."""

    class Search:
        results = passages
        queries: list[str] = []

        def __call__(self, *, course, user, query, k=6):
            self.queries.append(query)
            return list(self.results)[:k]

    fake = Search()
    fake.queries = []
    monkeypatch.setattr("tutor.replies.passages_search", fake)
    return fake


@pytest.fixture
def conversation(student, course):
    from tutor.conversations import conversation_start

    return conversation_start(course=course, learner=student)
