"""Tables of course material: uploaded files and the chunks they are split into.

The tables were the tutor app's and keep their names (``tutor_material``, ``tutor_chunk``
and the chunks' concepts, ``tutor_chunk_concepts``): the models moved, the rows did not.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.db import models
from django.utils.translation import gettext_lazy as _
from pgvector.django import HnswIndex, VectorField

from config.jobs import Job, JobQuerySet

# Uploaded files and the chunks they are split into. A chunk carries its course (copied
# from the material) so that every search filters one column.

# Text search configuration of the chunks' tsvector and of the queries run against it.
SEARCH_CONFIG = "english"


WORKER_DIED_FAILURE = _(
    "The worker reading this file stopped several times before it was done. Try again "
    "later; if it fails again, ask a site administrator to look at the logs."
)


class MaterialQuerySet(JobQuerySet):
    def for_course(self, course) -> MaterialQuerySet:
        return self.filter(course=course)

    def unfinished(self) -> MaterialQuerySet:
        return self.filter(status__in=Material.UNFINISHED)

    def abandon_fields(self, pk: int) -> dict:
        """A material given up on starts over when processed again: no progress, no text
        it was made from, and a retry offered (the file was not at fault)."""
        return {"progress": 0, "step": "", "failure_retryable": True, "text_hash": ""}

    def after_abandon(self, pk: int) -> None:
        # No half-written passages of a material that failed.
        Chunk.objects.filter(material_id=pk).delete()


def material_upload_to(material: Material, filename: str) -> str:
    return f"materials/course-{material.course_id}/{filename}"


class Material(Job):
    """An uploaded file of a course. Its ingestion (parse, chunk, embed) is a tracked job
    (``config/jobs.py``): queued, then processing under a worker's lease, then ready or
    failed with a reason written for the teacher (``error``, read as ``failure_reason``)."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        PROCESSING = "processing", _("Processing")
        READY = "ready", _("Ready")
        FAILED = "failed", _("Failed")

    class Step(models.TextChoices):
        READING = "reading", _("Reading the file")
        EMBEDDING = "embedding", _("Embedding passages")
        SAVING = "saving", _("Saving passages")

    UNFINISHED = (Status.QUEUED, Status.PROCESSING)
    QUEUED, RUNNING, FAILED = Status.QUEUED, Status.PROCESSING, Status.FAILED
    LOST_ERROR = WORKER_DIED_FAILURE

    course = models.ForeignKey(
        "learners.Course", on_delete=models.CASCADE, related_name="materials"
    )
    title = models.CharField(_("title"), max_length=300)
    # The name the file was uploaded with; re-importing a file of the same name replaces it.
    original_name = models.CharField(_("file name"), max_length=255)
    file = models.FileField(_("file"), upload_to=material_upload_to, max_length=500, blank=True)
    size = models.PositiveBigIntegerField(_("size in bytes"), default=0)
    # sha256 of the uploaded bytes, and of the text the chunks were made from.
    file_hash = models.CharField(max_length=64, blank=True)
    text_hash = models.CharField(max_length=64, blank=True)
    kind = models.CharField(_("format"), max_length=20, blank=True)
    status = models.CharField(
        _("status"), max_length=12, choices=Status.choices, default=Status.QUEUED
    )
    progress = models.PositiveSmallIntegerField(_("progress (%)"), default=0)
    # What a worker is doing with it now, and how many passages it has embedded of how
    # many: the teacher sees real steps, not a percentage that jumps.
    step = models.CharField(_("step"), max_length=12, choices=Step.choices, blank=True)
    passages_done = models.PositiveIntegerField(default=0)
    passages_total = models.PositiveIntegerField(default=0)
    # Whether processing the same file again could succeed: a worker or database fault,
    # not something wrong with the file (that needs a corrected upload).
    failure_retryable = models.BooleanField(default=False)
    # Why it failed, written for the teacher (``failure_reason``); the technical cause goes
    # to the logs.
    error = models.CharField(_("reason for failure"), max_length=500, blank=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)
    ingested_at = models.DateTimeField(null=True, blank=True)

    objects = MaterialQuerySet.as_manager()  # type: ignore[misc]  # a Job subclass's own queryset

    class Meta:
        db_table = "tutor_material"
        ordering = ["title", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=["queued", "processing", "ready", "failed"]),
                name="material_status_known",
            ),
            models.CheckConstraint(
                condition=models.Q(progress__lte=100), name="material_progress_percent"
            ),
        ]
        indexes = [
            models.Index(fields=["course", "status"]),
            # The recovery sweep's query, every minute: unfinished materials by lease.
            models.Index(
                fields=["lease_until"],
                condition=models.Q(status__in=["queued", "processing"]),
                name="material_unfinished_lease",
            ),
        ]
        verbose_name = _("material")
        verbose_name_plural = _("materials")

    def __str__(self) -> str:
        return self.title

    @property
    def failure_reason(self) -> str:
        """Why it failed, for the teacher (the job's ``error``)."""
        return self.error

    @failure_reason.setter
    def failure_reason(self, reason: str) -> None:
        self.error = reason

    @property
    def is_unfinished(self) -> bool:
        return self.status in self.UNFINISHED

    @property
    def can_process_again(self) -> bool:
        """Only a failure that was not the file's fault can go differently a second time."""
        return self.status == self.Status.FAILED and self.failure_retryable and bool(self.file)


class Chunk(models.Model):
    material = models.ForeignKey(Material, on_delete=models.CASCADE, related_name="chunks")
    course = models.ForeignKey("learners.Course", on_delete=models.CASCADE, related_name="+")
    position = models.PositiveIntegerField(_("position in the material"))
    text = models.TextField(_("text"))
    # Headings above the chunk, outermost first, joined with " › ".
    section = models.CharField(_("section"), max_length=1000, blank=True)
    page = models.PositiveIntegerField(_("page"), null=True, blank=True)
    # sha256 of the text that was embedded (section and text): equal hashes reuse vectors.
    text_hash = models.CharField(max_length=64)
    embedding = VectorField(dimensions=settings.EMBEDDING_DIMENSIONS)
    search_vector = models.GeneratedField(
        expression=SearchVector("text", config=SEARCH_CONFIG),
        output_field=SearchVectorField(),
        db_persist=True,
    )
    # Words in the text: the document length of BM25.
    word_count = models.PositiveIntegerField()
    # What the passage teaches: tagged from the headings (material/concept_tags.py) and by hand
    # in the admin. A reply citing it offers a check question on these concepts.
    concepts = models.ManyToManyField(
        "learners.Concept", blank=True, related_name="chunks", verbose_name=_("concepts")
    )

    class Meta:
        db_table = "tutor_chunk"
        ordering = ["material_id", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["material", "position"], name="chunk_position_unique_in_material"
            )
        ]
        indexes = [
            models.Index(fields=["course"]),
            GinIndex(fields=["search_vector"], name="chunk_search_vector_gin"),
            # Cosine: the distance chunks_search orders by (CosineDistance / <=>).
            HnswIndex(
                fields=["embedding"],
                name="chunk_embedding_hnsw",
                m=16,
                ef_construction=64,
                opclasses=["vector_cosine_ops"],
            ),
        ]
        verbose_name = _("chunk")
        verbose_name_plural = _("chunks")

    def __str__(self) -> str:
        return f"{self.material_id}#{self.position}"
