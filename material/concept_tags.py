"""Tagging course passages with the concepts they teach.

A chunk is tagged with a concept when the concept's name is in the chunk's section path
(its headings), the way concepts are suggested from the material's structure in the first
place. Tags are only ever added here, so a teacher's tags in the admin stay; the tutor
reads them to ask a check question on what a reply was about.
"""

from __future__ import annotations

from collections.abc import Iterable

from learners.models import Concept, Course
from material.models import Chunk


def chunks_tag_concepts(
    *, course: Course, concepts: Iterable[Concept] | None = None, material_id: int | None = None
) -> int:
    """Tag the course's chunks (or one material's) whose headings name a concept (all the
    course's, or ``concepts``); returns how many tags were added."""
    concepts = list(Concept.objects.for_course(course) if concepts is None else concepts)
    if not concepts:
        return 0
    chunks = Chunk.objects.filter(course=course).exclude(section="")
    if material_id is not None:
        chunks = chunks.filter(material_id=material_id)
    through = Chunk.concepts.through
    wanted = {
        (chunk_id, concept.pk)
        for chunk_id, section in chunks.values_list("id", "section")
        for concept in concepts
        if concept.name.casefold() in section.casefold()
    }
    existing = set(
        through.objects.filter(
            chunk_id__in={chunk for chunk, _concept in wanted},
            concept_id__in={concept.pk for concept in concepts},
        ).values_list("chunk_id", "concept_id")
    )
    new = sorted(wanted - existing)
    # A concurrent tagging may have added some meanwhile: the unique pair decides.
    through.objects.bulk_create(
        [through(chunk_id=chunk, concept_id=concept) for chunk, concept in new],
        ignore_conflicts=True,
    )
    return len(new)


def passage_concept_ids(*, chunk_ids: Iterable[int | None]) -> list[int]:
    """The concepts tagged on these chunks, in the order of the chunks (best passage
    first), each once."""
    order = [c for c in chunk_ids if c is not None]
    rows = Chunk.concepts.through.objects.filter(chunk_id__in=order).values_list(
        "chunk_id", "concept_id"
    )
    by_chunk: dict[int, list[int]] = {}
    for chunk_id, concept_id in rows:
        by_chunk.setdefault(chunk_id, []).append(concept_id)
    seen: dict[int, None] = {}
    for chunk_id in order:
        for concept_id in sorted(by_chunk.get(chunk_id, [])):
            seen.setdefault(concept_id)
    return list(seen)
