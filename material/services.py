"""Write use cases of course material: upload, ingestion (parse, chunk, embed), removal."""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from django.core.exceptions import ValidationError
from django.core.files import File
from django.db import DatabaseError, InterfaceError, OperationalError, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ai import embedding
from config.celery import enqueue_on_commit
from config.jobs import queued_until
from material import chunking, parsing
from material.concept_tags import chunks_tag_concepts
from material.models import Chunk, Material
from material.retrieval import course_stats_forget, search_index_settle

if TYPE_CHECKING:
    from learners.models import Course


logger = logging.getLogger(__name__)

# Passages embedded per call, shortest first: measured on one thread (EMBEDDING_THREADS),
# batches of 8-16 cost 10-15% less CPU than 64 on the same passages (activations stay
# in cache and a batch of similar lengths pads little).
EMBED_BATCH = 16
# The percentage (for the API) that each step of ingestion starts at; embedding fills the
# span between by passages done.
STEP_PERCENT = {"reading": 0, "embedding": 10, "saving": 95}
GENERIC_FAILURE = _(
    "Something went wrong while reading this file. Try uploading it again; if it fails "
    "again, ask a site administrator to look at the logs."
)


class IngestInterrupted(Exception):
    """The database went away mid-way; the material is queued again for a retry."""


class IngestCancelled(Exception):
    """The material was removed (or taken over) while this worker read it; it stops."""


class MaterialBusy(Exception):
    """The material's passages are being written this moment; removing it must wait."""

    message = _(
        "This material is being saved right now and cannot be removed this moment. "
        "Try again in a minute; nothing was removed."
    )


# PostgreSQL's "lock not available", the answer to SELECT ... FOR UPDATE NOWAIT.
_LOCK_NOT_AVAILABLE = "55P03"


def _sha256(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode()
    return hashlib.sha256(data).hexdigest()


def _stem(name: str) -> str:
    return Path(name).stem or name


def _file_hash(file: File) -> str:
    digest = hashlib.sha256()
    file.seek(0)
    for block in file.chunks():
        digest.update(block)
    file.seek(0)
    return digest.hexdigest()


def _enqueue(material_id: int) -> None:
    """Send the ingestion task once the transaction commits (if the broker is away, the
    material stays queued for the recovery sweep)."""
    from material.tasks import material_ingest_task

    enqueue_on_commit(material_ingest_task, material_id)


@transaction.atomic
def material_upload(
    *,
    course: Course,
    file: File,
    uploaded_by=None,
    title: str = "",
    replace: bool = False,
    enqueue: bool = True,
) -> Material:
    """Store an uploaded file as course material and queue its ingestion.

    With ``replace``, a material of the course with the same file name is updated instead
    of a new one made; when its bytes are unchanged and it is ready, nothing happens. A
    file that is empty or over ``UPLOAD_MAX_BYTES`` is recorded as failed without being
    stored.
    """
    name = Path(file.name or "upload").name[:255]
    material: Material | None = None
    if replace:
        same_name = Material.objects.select_for_update().filter(course=course, original_name=name)
        material = same_name.order_by("pk").first()
    if material is None:
        material = Material(course=course, original_name=name)
    material.title = (title or material.title or _stem(name))[:300]
    material.uploaded_by = uploaded_by or material.uploaded_by
    material.size = file.size or 0
    try:
        parsing.size_check(size=material.size)
    except parsing.ParseError as error:
        if material.file:
            material.file.delete(save=False)
        material.file_hash = material.text_hash = ""
        material.status, material.progress = Material.Status.FAILED, 0
        material.failure_reason, material.failure_retryable = str(error), False
        material.step, material.passages_done, material.passages_total = "", 0, 0
        material.save()
        Chunk.objects.filter(material=material).delete()
        return material
    file_hash = _file_hash(file)
    if (
        material.pk
        and material.file_hash == file_hash
        and material.status in (Material.Status.READY, *Material.UNFINISHED)
    ):
        material.save(update_fields=["title", "uploaded_by", "updated"])
        return material
    if material.file:
        material.file.delete(save=False)
    material.file.save(name, file, save=False)
    material.file_hash = file_hash
    material.status, material.progress, material.failure_reason = Material.Status.QUEUED, 0, ""
    material.failure_retryable = False
    material.step, material.passages_done, material.passages_total = "", 0, 0
    material.claimed_at, material.lease_until, material.attempts = None, queued_until(), 0
    material.save()
    if enqueue:
        _enqueue(material.pk)
    return material


def material_reingest(*, material: Material) -> Material:
    """Queue a material for ingestion again (after a failure, or a new embedding model)."""
    if not material.file:
        return material
    updated = (
        Material.objects.filter(pk=material.pk)
        .exclude(status__in=Material.UNFINISHED)
        .requeue(
            progress=0,
            step="",
            passages_done=0,
            passages_total=0,
            error="",
            failure_retryable=False,
            claimed_at=None,
            attempts=0,
        )
    )
    material.refresh_from_db()
    if updated:
        _enqueue(material.pk)
    return material


def material_rename(*, material: Material, title: str) -> Material:
    """Give a material the title the teacher chose (what students and citations show)."""
    title = " ".join(title.split())
    if not title:
        raise ValidationError(_("Give the material a title."))
    max_length = Material._meta.get_field("title").max_length
    if max_length is not None and len(title) > max_length:
        raise ValidationError(_("A title can be at most 300 characters long."))
    material.title = title
    material.save(update_fields=["title", "updated"])
    return material


def material_delete(*, material: Material) -> None:
    """Remove a material at any stage of its ingestion: cancel the job, remove the rows,
    then the file, in that order.

    Taking the material's row lock cancels the job: a worker still parsing or embedding
    finds the row gone at its next progress report, or when it comes to write its
    passages, and stops. A worker that is writing its passages holds that lock for the
    seconds it takes; removal is then refused with ``MaterialBusy`` rather than waited
    for. The file goes only after the rows are gone (on commit), so a material is never
    left "ready" without its file.
    """
    try:
        with transaction.atomic():
            locked = Material.objects.select_for_update(nowait=True).filter(pk=material.pk).first()
            if locked is None:
                return  # removed already (a second click)
            Chunk.objects.filter(material_id=locked.pk).delete()
            name, storage = locked.file.name, locked.file.storage
            locked.delete()
            if name:
                transaction.on_commit(lambda: _file_remove(storage, name))
        # Search's cached chunk count and term frequencies of the course are stale.
        course_stats_forget(course_id=material.course_id)
    except OperationalError as error:
        if getattr(error.__cause__, "sqlstate", None) == _LOCK_NOT_AVAILABLE:
            raise MaterialBusy(str(MaterialBusy.message)) from error
        raise


def _file_remove(storage, name: str) -> None:
    try:
        storage.delete(name)
    except OSError as error:  # the rows are gone; a stray file harms no one
        logger.warning("the file %s of a removed material stays: %r", name, error)


def material_import_path(
    *, course: Course, path: Path, uploaded_by=None, enqueue: bool = True
) -> list[Material]:
    """Upload a file, or every file under a folder (hidden ones skipped), as material;
    files imported before under the same name are replaced."""
    path = Path(path)
    if path.is_dir():
        files = sorted(
            p
            for p in path.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
        )
    else:
        files = [path]
    materials = []
    for file_path in files:
        with file_path.open("rb") as handle:
            materials.append(
                material_upload(
                    course=course,
                    file=File(handle, name=file_path.name),
                    uploaded_by=uploaded_by,
                    replace=True,
                    enqueue=enqueue,
                )
            )
    return materials


# --- ingestion ------------------------------------------------------------------------------


def _progress(material: Material, step: str, *, done: int = 0, total: int = 0) -> None:
    """Record the step a worker is at (and passages embedded of how many); a material
    removed or taken over meanwhile stops the work here."""
    percent = STEP_PERCENT[step]
    if step == Material.Step.EMBEDDING and total:
        percent += int(done / total * (STEP_PERCENT["saving"] - percent))
    if not Material.objects.filter(pk=material.pk, claimed_at=material.claimed_at).update(
        step=step, passages_done=done, passages_total=total, progress=min(99, percent)
    ):
        raise IngestCancelled(material.pk)


def _fail(material: Material, reason: str, *, retryable: bool = False) -> None:
    with transaction.atomic():
        Chunk.objects.filter(material=material).delete()
        Material.objects.filter(pk=material.pk, claimed_at=material.claimed_at).fail(
            error=reason, progress=0, step="", failure_retryable=retryable, text_hash=""
        )


def materials_recover() -> int:
    """Queue again the materials whose worker died (lease lapsed while processing) or
    whose task message seems lost (still queued after its lease); returns how many. One
    that killed its workers too often is failed instead (``config/jobs.py``)."""
    return Material.objects.recover(send=_enqueue, progress=0, step="", claimed_at=None).requeued


def _vectors(
    texts: list[str], hashes: list[str], known: dict, on_progress: Callable[[int, int], None]
) -> list:
    """One vector per text: reused where a chunk with the same text hash has one, the
    rest embedded in batches (``on_progress(done, total)`` after each)."""
    text_of = dict(zip(hashes, texts, strict=True))
    # Shortest first, so that each batch holds texts of about one length: the encoder pads
    # a batch to its longest text (encode sorts only within the texts of one call).
    missing = sorted(
        dict.fromkeys(h for h in hashes if h not in known), key=lambda h: len(text_of[h])
    )
    on_progress(0, len(missing))
    for start in range(0, len(missing), EMBED_BATCH):
        batch = missing[start : start + EMBED_BATCH]
        for text_hash, vector in zip(
            batch,
            embedding.embed_texts([text_of[h] for h in batch], batch_size=EMBED_BATCH),
            strict=True,
        ):
            known[text_hash] = vector
        on_progress(start + len(batch), len(missing))
    return [known[h] for h in hashes]


def material_ingest(*, material_id: int) -> Material | None:
    """Parse, chunk and embed a queued material and replace its chunks in one transaction.

    Returns the material, or None when it was not queued. Unchanged text re-embeds
    nothing; a changed chunk whose text another chunk of the material had keeps that
    vector. Any failure leaves the material failed with a reason and no chunks.
    """
    claim = Material.objects.claim(
        material_id,
        progress=0,
        step=Material.Step.READING,
        passages_done=0,
        passages_total=0,
        error="",
    )
    if claim is None:  # another worker has it, it is done, or it killed its workers
        return None
    material = claim.rows.first()
    if material is None:  # removed or taken over this moment
        return None
    with claim.lease():
        return _ingest(material)


def _ingest(material: Material) -> Material | None:
    try:
        with material.file.open("rb") as handle:
            data = handle.read()
        document = parsing.document_parse(name=material.original_name, data=data)
        if material.title == _stem(material.original_name) and document.title:
            material.title = document.title
        drafts = chunking.document_chunk(document.blocks, title=material.title)
        texts = [draft.embedded_text for draft in drafts]
        hashes = [_sha256(text) for text in texts]
        text_hash = _sha256("\x1e".join(hashes))
        unchanged = text_hash == material.text_hash and Chunk.objects.filter(
            material=material
        ).count() == len(drafts)
        if not unchanged:
            known = dict(
                Chunk.objects.filter(material=material, text_hash__in=hashes).values_list(
                    "text_hash", "embedding"
                )
            )
            vectors = _vectors(
                texts,
                hashes,
                known,
                lambda done, total: _progress(
                    material, Material.Step.EMBEDDING, done=done, total=total
                ),
            )
        _progress(material, Material.Step.SAVING, done=len(drafts), total=len(drafts))
        with transaction.atomic():
            # Still ours? A re-upload may have queued the material again meanwhile, or
            # the teacher removed it (then there is nothing to write to).
            current = Material.objects.select_for_update().filter(pk=material.pk).first()
            if current is None:
                raise IngestCancelled(material.pk)
            if current.claimed_at != material.claimed_at:
                return current
            if not unchanged:
                Chunk.objects.filter(material=material).delete()
                Chunk.objects.bulk_create(
                    Chunk(
                        material=material,
                        course_id=material.course_id,
                        position=draft.position,
                        text=draft.text,
                        section=draft.section[:1000],
                        page=draft.page,
                        text_hash=text_hash_,
                        embedding=vector,
                        word_count=draft.word_count,
                    )
                    for draft, text_hash_, vector in zip(drafts, hashes, vectors, strict=True)
                )
                chunks_tag_concepts(course=material.course, material_id=material.pk)
            Material.objects.filter(pk=material.pk).update(
                title=material.title,
                kind=document.kind,
                text_hash=text_hash,
                status=Material.Status.READY,
                progress=100,
                step="",
                passages_done=len(drafts),
                passages_total=len(drafts),
                error="",
                failure_retryable=False,
                lease_until=None,
                ingested_at=timezone.now(),
                updated=timezone.now(),
            )
        if not unchanged:
            # Search's cached chunk count and term frequencies of the course are stale.
            course_stats_forget(course_id=material.course_id)
            # The new chunks' lexemes wait in the keyword index's pending list, which every
            # search would read whole until merged.
            search_index_settle()
    except IngestCancelled:
        logger.info("material %s was removed or taken over while being read", material.pk)
    except parsing.ParseError as error:
        logger.info("material %s refused: %s", material.pk, error)
        _fail(material, str(error))
    except (OperationalError, InterfaceError) as error:
        logger.warning("material %s interrupted by the database: %r", material.pk, error)
        # If even this fails, the retry finds the claim abandoned after the time limit.
        with contextlib.suppress(DatabaseError):
            Material.objects.filter(pk=material.pk, claimed_at=material.claimed_at).requeue(
                progress=0, step="", claimed_at=None
            )
        raise IngestInterrupted(str(error)) from error
    except Exception:
        if not Material.objects.filter(pk=material.pk).exists():
            logger.info("material %s was removed while being read", material.pk)
            return None
        logger.exception("material %s could not be ingested", material.pk)
        _fail(material, str(GENERIC_FAILURE), retryable=True)
    return Material.objects.filter(pk=material.pk).first()
