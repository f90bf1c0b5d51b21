"""Concepts of a course: what a teacher defines, and what the material's structure suggests.

Prerequisites form a directed graph that must stay acyclic; a change that would close a
cycle is refused with the cycle named, so the teacher can see which link to drop.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, Min, Q
from django.utils.translation import gettext as _

from learners.models import Concept, Course
from learning.models import PracticeQuestion
from material.concept_tags import chunks_tag_concepts
from material.models import Chunk

logger = logging.getLogger(__name__)

MAX_SUGGESTIONS = 50
_NUMBERING = re.compile(r"^\s*(?:#+|(?:\d+[.)]?)+|[ivxlc]+[.)]|[-*•])\s+", re.IGNORECASE)
# Headings that are structure, not content.
_NOT_CONCEPTS = {
    "introduction",
    "summary",
    "conclusion",
    "conclusions",
    "references",
    "bibliography",
    "contents",
    "table of contents",
    "exercises",
    "questions",
    "glossary",
    "index",
    "appendix",
    "preface",
    "introducción",
    "resumen",
    "conclusión",
    "conclusiones",
    "referencias",
    "bibliografía",
    "índice",
    "ejercicios",
    "preguntas",
    "glosario",
    "apéndice",
}


class ConceptCycleError(ValidationError):
    def __init__(self, cycle: Sequence[str]) -> None:
        self.cycle = list(cycle)
        super().__init__(
            _("These prerequisites would make a cycle: %(cycle)s. Remove one of the links.")
            % {"cycle": " → ".join(self.cycle)},
            code="cycle",
        )


def _prerequisite_graph(*, course: Course) -> dict[int, set[int]]:
    graph: dict[int, set[int]] = {}
    through = Concept.prerequisites.through.objects.filter(from_concept__course=course)
    for from_id, to_id in through.values_list("from_concept_id", "to_concept_id"):
        graph.setdefault(from_id, set()).add(to_id)
    return graph


def _find_cycle(graph: dict[int, set[int]], start: int) -> list[int] | None:
    """A path start → … → start following prerequisite links, or None."""
    stack: list[tuple[int, list[int]]] = [(start, [start])]
    seen: set[int] = set()
    while stack:
        node, path = stack.pop()
        for nxt in sorted(graph.get(node, ())):
            if nxt == start:
                return path + [start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, path + [nxt]))
    return None


@transaction.atomic
def concept_save(
    *,
    course: Course,
    name: str,
    description: str = "",
    prerequisites: Iterable[Concept] = (),
    concept: Concept | None = None,
) -> Concept:
    """Create a concept (or update ``concept``) with its prerequisites; refuses cycles."""
    name = " ".join(name.split())
    if not name:
        raise ValidationError(_("A concept needs a name."), code="required")
    clash = Concept.objects.filter(course=course, name__iexact=name)
    if concept is not None:
        if concept.course_id != course.pk:
            raise ValidationError(_("That concept belongs to another course."), code="course")
        clash = clash.exclude(pk=concept.pk)
    if clash.exists():
        raise ValidationError(
            _("The course already has a concept called “%(name)s”.") % {"name": name},
            code="duplicate",
        )
    prerequisites = list(prerequisites)
    if any(p.course_id != course.pk for p in prerequisites):
        raise ValidationError(_("Prerequisites must be concepts of the same course."))
    if concept is None:
        concept = Concept.objects.create(course=course, name=name, description=description)
    else:
        concept.name = name
        concept.description = description
        concept.save(update_fields=["name", "description"])
    if any(p.pk == concept.pk for p in prerequisites):
        raise ConceptCycleError([concept.name, concept.name])
    graph = _prerequisite_graph(course=course)
    graph[concept.pk] = {p.pk for p in prerequisites}
    cycle = _find_cycle(graph, concept.pk)
    if cycle is not None:
        names = dict(Concept.objects.filter(pk__in=cycle).values_list("pk", "name"))
        raise ConceptCycleError([names[pk] for pk in cycle])
    concept.prerequisites.set(prerequisites)
    _chunks_tag(course=course, concepts=[concept])
    return concept


def _chunks_tag(*, course: Course, concepts: list[Concept]) -> None:
    """Tag the material passages whose headings name these concepts."""
    chunks_tag_concepts(course=course, concepts=concepts)


def concept_delete(*, concept: Concept) -> None:
    concept.delete()


def concept_suggestions(*, course: Course, headings: Iterable[str]) -> list[str]:
    """Concept names from section headings: numbering stripped, structural headings and
    names the course already has left out, duplicates merged, in their first order."""
    existing = {
        n.casefold() for n in Concept.objects.filter(course=course).values_list("name", flat=True)
    }
    seen: set[str] = set()
    names: list[str] = []
    for heading in headings:
        name = _NUMBERING.sub("", heading or "").strip(" \t:.-–—")
        name = " ".join(name.split())[:200]
        key = name.casefold()
        if len(name) < 3 or key in _NOT_CONCEPTS or key in existing or key in seen:
            continue
        if len(name.split()) > 12:  # a sentence, not a heading
            continue
        seen.add(key)
        names.append(name)
        if len(names) >= MAX_SUGGESTIONS:
            break
    return names


@transaction.atomic
def concepts_accept(*, course: Course, names: Iterable[str]) -> list[Concept]:
    """Create the accepted suggestions; names the course already has are skipped."""
    created = []
    for name in concept_suggestions(course=course, headings=names):
        created.append(Concept.objects.create(course=course, name=name))
    _chunks_tag(course=course, concepts=created)
    return created


def course_concepts(*, course: Course) -> list[Concept]:
    """The course's concepts with their prerequisites and ``approved_questions`` counted,
    in two queries."""
    approved = Count("questions", filter=Q(questions__status=PracticeQuestion.Status.APPROVED))
    return list(
        Concept.objects.for_course(course)
        .annotate(approved_questions=approved)
        .prefetch_related("prerequisites")
    )


# The material app joins a chunk's headings, outermost first, with this separator.
SECTION_SEPARATOR = " › "


# Material read for practice questions: at most this many passages, so a course with a
# large library does not hand a whole book to the question writer.
MAX_MATERIAL_PASSAGES = 200


def material_section_paths(*, course: Course) -> list[str]:
    """The section paths of the course's material, each once, in reading order.

    Only the short ``section`` column is read, grouped in the database: the page that
    offers concept suggestions answers as fast with 50 MB of material as with one page.
    """
    rows = (
        Chunk.objects.filter(course=course)
        .values("section")
        .annotate(first_material=Min("material_id"), first_position=Min("position"))
        .order_by("first_material", "first_position", "section")
        .values_list("section", flat=True)
    )
    return [section or "" for section in rows]


def course_has_material(*, course: Course) -> bool:
    return Chunk.objects.filter(course=course).exists()


def _join_sections(rows: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """(section, text) rows in reading order → one entry per run of the same section."""
    sections: list[tuple[str, list[str]]] = []
    for heading, text in rows:
        heading = heading or ""
        if sections and sections[-1][0] == heading:
            sections[-1][1].append(text)
        else:
            sections.append((heading, [text]))
    return [(heading, "\n".join(texts)) for heading, texts in sections]


def material_sections(*, course: Course, limit: int | None = None) -> list[tuple[str, str]]:
    """(section path, text) of the course's material in reading order, consecutive chunks
    of one section joined (at most ``limit`` chunks read); empty without material."""
    rows = (
        Chunk.objects.filter(course=course)
        .order_by("material_id", "position")
        .values_list("section", "text")
    )
    return _join_sections(rows[:limit] if limit else rows)


def section_headings(paths: Iterable[str] | list[tuple[str, str]]) -> list[str]:
    """Every heading of the section paths (or of ``material_sections``' pairs), outer ones
    first, each once."""
    headings: dict[str, None] = {}
    for path in paths:
        if isinstance(path, tuple):
            path = path[0]
        for heading in path.split(SECTION_SEPARATOR):
            if heading.strip():
                headings.setdefault(heading.strip())
    return list(headings)


def material_texts(*, course: Course, concept: Concept) -> list[str]:
    """The material sections about the concept (its name in their heading), else the
    material's first passages; at most ``MAX_MATERIAL_PASSAGES`` passages either way."""
    chunks = Chunk.objects.filter(course=course).order_by("material_id", "position")
    about = chunks.filter(section__icontains=concept.name).values_list("section", "text")
    sections = _join_sections(about[:MAX_MATERIAL_PASSAGES])
    if not sections:
        sections = _join_sections(chunks.values_list("section", "text")[:MAX_MATERIAL_PASSAGES])
    return [text for _heading, text in sections]
