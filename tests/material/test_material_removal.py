"""Removing a material is safe at every stage of its ingestion (issue 16, item 1): the job
is cancelled, the rows go, then the file; while the worker is writing its passages the
removal is refused at once with a message, never a 500 or a hanging click."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.db import connection, transaction
from django.urls import reverse

from ai import embedding
from material.models import Chunk, Material
from material.services import material_ingest, material_upload
from tests.material.material_files import MARKDOWN, media_root  # noqa: F401

pytestmark = [pytest.mark.usefixtures("media_root"), pytest.mark.django_db(transaction=True)]


def _upload(course) -> Material:
    return material_upload(course=course, file=ContentFile(MARKDOWN.encode(), name="cells.md"))


def _remove(client, course, material):
    url = reverse("tutor:material-delete", args=[course.pk, material.pk])
    return client.post(url, HTTP_HX_REQUEST="true")


def _in_a_thread(work) -> threading.Thread:
    def run():
        try:
            work()
        finally:
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_removing_while_the_worker_writes_the_passages_is_refused_at_once(client, course, teacher):
    material = material_ingest(material_id=_upload(course).pk)
    path = material.file.path
    locked, release = threading.Event(), threading.Event()

    def worker_writing():  # as _ingest's last transaction: lock the row, write passages
        with transaction.atomic():
            Material.objects.select_for_update().get(pk=material.pk)
            locked.set()
            chunk = Chunk.objects.filter(material=material).first()
            chunk.pk, chunk.position = None, 100
            chunk.save()
            release.wait(timeout=30)  # a long write; the removal must not wait for it

    thread = _in_a_thread(worker_writing)
    assert locked.wait(timeout=10)
    client.force_login(teacher)
    started = time.monotonic()
    response = _remove(client, course, material)
    elapsed = time.monotonic() - started
    release.set()
    thread.join(timeout=10)
    assert response.status_code == 200 and elapsed < 15  # refused, not waited out
    assert "being saved right now" in response.text and "nothing was removed" in response.text
    assert 'id="material-notice"' in response.text  # kept outside the self-refreshing list
    material.refresh_from_db()
    assert material.status == Material.Status.READY
    assert Chunk.objects.filter(material=material).count() == 3
    assert Path(path).read_bytes() == MARKDOWN.encode()  # still there: "Process again" works
    # Once the worker is done the same click removes it, rows and file.
    assert _remove(client, course, material).status_code == 200
    assert not Material.objects.filter(pk=material.pk).exists()
    assert not Chunk.objects.exists()
    assert not Path(path).exists()


def test_removing_while_it_is_embedded_cancels_the_job(
    client, course, teacher, monkeypatch, caplog
):
    material = _upload(course)
    path = material.file.path
    embedding_started, removed = threading.Event(), threading.Event()
    real = embedding.embed_texts

    def slow_embedder(texts, **kwargs):
        embedding_started.set()
        removed.wait(timeout=10)
        return real(texts, **kwargs)

    monkeypatch.setattr(embedding, "embed_texts", slow_embedder)
    outcome = {}
    thread = _in_a_thread(lambda: outcome.update(result=material_ingest(material_id=material.pk)))
    assert embedding_started.wait(timeout=30)
    assert Material.objects.get(pk=material.pk).status == Material.Status.PROCESSING
    client.force_login(teacher)
    with caplog.at_level(logging.INFO, logger="material.services"):
        response = _remove(client, course, material)
        removed.set()
        thread.join(timeout=30)
    assert response.status_code == 200 and "cells.md" not in response.text
    assert outcome == {"result": None}  # the worker stopped without writing
    assert not Material.objects.exists() and not Chunk.objects.exists()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not Path(path).exists()


def test_a_queued_material_removed_before_its_task_runs_leaves_nothing(client, course, teacher):
    material = _upload(course)
    client.force_login(teacher)
    assert _remove(client, course, material).status_code == 200
    assert material_ingest(material_id=material.pk) is None
    assert not Material.objects.exists() and not Chunk.objects.exists()


def test_a_second_click_on_remove_shows_the_list(client, course, teacher):
    material = material_ingest(material_id=_upload(course).pk)
    client.force_login(teacher)
    assert _remove(client, course, material).status_code == 200
    again = _remove(client, course, material)
    assert again.status_code == 200 and "material-list" in again.text
    plain = client.post(reverse("tutor:material-delete", args=[course.pk, material.pk]))
    assert plain.status_code == 302
