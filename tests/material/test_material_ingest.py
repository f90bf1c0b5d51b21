from __future__ import annotations

import time

import pytest
from django.core.files.base import ContentFile

from ai import embedding
from material import services
from material.models import Chunk, Material
from material.services import material_ingest, material_upload
from tests.material.material_files import (  # noqa: F401
    MARKDOWN,
    VOLCANO,
    media_root,
    pdf_bytes,
    structured_pdf_bytes,
)

pytestmark = pytest.mark.usefixtures("media_root")


@pytest.fixture
def embed_calls(monkeypatch):
    """Texts sent to the embedder, per call (the real embedder still runs)."""
    calls: list[list[str]] = []
    real = embedding.embed_texts

    def spy(texts, **kwargs):
        calls.append(list(texts))
        return real(texts, **kwargs)

    monkeypatch.setattr(embedding, "embed_texts", spy)
    return calls


def upload(course, name: str, data: bytes, **kwargs) -> Material:
    return material_upload(course=course, file=ContentFile(data, name=name), **kwargs)


def test_a_markdown_file_becomes_ready_chunks_with_citation_data(course, teacher):
    material = upload(course, "cells.md", MARKDOWN.encode(), uploaded_by=teacher)
    assert material.status == Material.Status.QUEUED
    material = material_ingest(material_id=material.pk)
    assert material.status == Material.Status.READY
    assert material.progress == 100
    assert material.title == "Cell Energy"
    assert material.kind == "markdown"
    chunks = list(Chunk.objects.filter(material=material))
    assert [c.section for c in chunks] == [
        "Cell Energy › Photosynthesis",
        "Cell Energy › Respiration",
    ]
    assert all(c.course_id == course.pk for c in chunks)
    assert "| Respiration | Mitochondrion |" in chunks[1].text
    assert len(chunks[0].embedding) == 384


def test_a_pdf_keeps_its_pages(course):
    material = upload(
        course,
        "two.pdf",
        pdf_bytes(["Chlorophyll is green.", "Mitochondria release energy as ATP."]),
    )
    material = material_ingest(material_id=material.pk)
    assert material.status == Material.Status.READY
    assert list(material.chunks.values_list("page", flat=True)) == [1, 2]


def test_the_task_runs_only_once_per_queued_material(course):
    material = upload(course, "cells.md", MARKDOWN.encode())
    assert material_ingest(material_id=material.pk).status == Material.Status.READY
    assert material_ingest(material_id=material.pk) is None


def test_unchanged_text_re_embeds_nothing(course, embed_calls):
    material = upload(course, "cells.md", MARKDOWN.encode())
    material_ingest(material_id=material.pk)
    first = list(Chunk.objects.filter(material=material).values_list("pk", flat=True))
    assert sum(len(c) for c in embed_calls) == 2
    # Same text in a file that differs in bytes (trailing whitespace).
    material = upload(course, "cells.md", MARKDOWN.encode() + b"\n\n", replace=True)
    assert material.status == Material.Status.QUEUED
    material = material_ingest(material_id=material.pk)
    assert material.status == Material.Status.READY
    assert sum(len(c) for c in embed_calls) == 2
    assert list(Chunk.objects.filter(material=material).values_list("pk", flat=True)) == first


def test_identical_bytes_are_not_even_queued_again(course):
    material = upload(course, "cells.md", MARKDOWN.encode())
    material_ingest(material_id=material.pk)
    again = upload(course, "cells.md", MARKDOWN.encode(), replace=True)
    assert again.pk == material.pk
    assert again.status == Material.Status.READY
    assert Material.objects.count() == 1


def test_changed_text_replaces_the_chunks_and_embeds_only_what_changed(course, embed_calls):
    material = upload(course, "cells.md", MARKDOWN.encode())
    material_ingest(material_id=material.pk)
    changed = MARKDOWN.replace("producing ATP", "producing plenty of ATP")
    material = upload(course, "cells.md", changed.encode(), replace=True)
    material = material_ingest(material_id=material.pk)
    assert embed_calls[-1] == [
        embed_calls[0][1].replace("producing ATP", "producing plenty of ATP")
    ]
    texts = list(Chunk.objects.filter(material=material).values_list("text", flat=True))
    assert len(texts) == 2
    assert "plenty of ATP" in texts[1]
    assert not Chunk.objects.filter(text__contains="producing ATP").exists()


def test_a_broken_re_upload_fails_and_leaves_no_chunks(course):
    material = upload(course, "cells.md", MARKDOWN.encode())
    material_ingest(material_id=material.pk)
    material = upload(course, "cells.md", b"\xff\xfe not utf-8 \xff", replace=True)
    material = material_ingest(material_id=material.pk)
    assert material.status == Material.Status.FAILED
    assert "UTF-8" in material.failure_reason
    assert not Chunk.objects.filter(material=material).exists()


def test_a_bad_file_fails_without_affecting_the_rest_of_the_batch(course):
    good = upload(course, "cells.md", MARKDOWN.encode())
    scan = upload(course, "scan.pdf", pdf_bytes(["", ""]))
    other = upload(course, "volcano.md", VOLCANO.encode())
    results = {m.original_name: material_ingest(material_id=m.pk) for m in (good, scan, other)}
    assert results["scan.pdf"].status == Material.Status.FAILED
    assert "scan" in results["scan.pdf"].failure_reason
    assert not Chunk.objects.filter(material=scan).exists()
    assert results["cells.md"].status == results["volcano.md"].status == Material.Status.READY
    assert Chunk.objects.filter(course=course).count() == 3


def test_empty_and_oversized_files_fail_at_once_without_being_stored(course, settings):
    settings.UPLOAD_MAX_BYTES = 100
    empty = upload(course, "empty.txt", b"")
    big = upload(course, "big.txt", b"x" * 101)
    for material in (empty, big):
        assert material.status == Material.Status.FAILED
        assert not material.file
    assert empty.failure_reason == "The file is empty."
    assert "at most" in big.failure_reason


def test_an_unexpected_error_fails_with_a_general_reason(course, monkeypatch):
    material = upload(course, "cells.md", MARKDOWN.encode())

    def explode(texts, **kwargs):
        raise RuntimeError("the embedder fell over")

    monkeypatch.setattr(embedding, "embed_texts", explode)
    material = material_ingest(material_id=material.pk)
    assert material.status == Material.Status.FAILED
    assert material.failure_reason == str(services.GENERIC_FAILURE)
    assert "fell over" not in material.failure_reason


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_ingests_an_upload(celery_worker, make_course, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    course = make_course("Worker course")
    material = upload(course, "cells.md", MARKDOWN.encode())
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        material.refresh_from_db()
        if not material.is_unfinished:
            break
        time.sleep(0.2)
    assert material.status == Material.Status.READY
    assert Chunk.objects.filter(material=material).count() == 2


def test_a_pdf_titled_about_blank_takes_its_file_name(course):
    import io

    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf_bytes(["Chlorophyll is green."]))))
    writer.add_metadata({"/Title": "about:blank"})
    out = io.BytesIO()
    writer.write(out)
    material = material_ingest(material_id=upload(course, "Leaf pigments.pdf", out.getvalue()).pk)
    assert material.status == Material.Status.READY
    assert material.title == "Leaf pigments"


def test_ingestion_records_its_steps_and_passages(course, monkeypatch):
    seen = []
    real = services._progress

    def spy(material, step, *, done=0, total=0):
        real(material, step, done=done, total=total)
        row = Material.objects.get(pk=material.pk)
        seen.append((row.step, row.passages_done, row.passages_total, row.progress))

    monkeypatch.setattr(services, "_progress", spy)
    material = material_ingest(material_id=upload(course, "cells.md", MARKDOWN.encode()).pk)
    chunks = material.chunks.count()
    assert seen[0] == ("embedding", 0, chunks, 10)
    assert seen[-2] == ("embedding", chunks, chunks, 95)
    assert seen[-1] == ("saving", chunks, chunks, 95)
    assert (material.step, material.passages_done, material.passages_total) == ("", chunks, chunks)
    # A failure that is the file's fault cannot be fixed by processing it again.
    failed = material_ingest(material_id=upload(course, "empty.md", b"# Only a heading").pk)
    assert failed.status == Material.Status.FAILED and not failed.can_process_again


def test_pdf_chunks_get_sections_and_concept_tags(course):
    from learners.models import Concept

    magma = Concept.objects.create(course=course, name="Magma chambers")
    eruptions = Concept.objects.create(course=course, name="Eruptions")
    pages = [
        [
            (20, "Volcanoes"),
            (11, "A volcano is an opening in the crust of a planet."),
            (15, "Magma chambers"),
            (11, "Magma collects in chambers under the volcano before it erupts."),
        ],
        [(15, "Eruptions"), (11, "An eruption sends lava, ash and gas out of the vent.")],
    ]
    outline = [(1, "Volcanoes", 1), (2, "Magma chambers", 1), (2, "Eruptions", 2)]
    material = upload(course, "volcanoes.pdf", structured_pdf_bytes(pages, outline=outline))
    material = material_ingest(material_id=material.pk)
    assert material.status == Material.Status.READY
    chunks = list(material.chunks.order_by("position"))
    assert [(c.section, c.page) for c in chunks] == [
        ("Volcanoes", 1),
        ("Volcanoes › Magma chambers", 1),
        ("Volcanoes › Eruptions", 2),
    ]
    assert [sorted(c.concepts.values_list("pk", flat=True)) for c in chunks] == [
        [],
        [magma.pk],
        [eruptions.pk],
    ]
