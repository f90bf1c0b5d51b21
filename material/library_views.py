"""The course's material for reading: a library of ready materials and each material's
passages as safe HTML with its headings, a page at a time (``tutor:library``,
``tutor:material-detail``). Every query is bounded by a page, so a page's time does not
grow with the size of the material."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils.safestring import SafeString
from django.views.decorators.http import require_GET

from config.markdown import reply_html
from learners.http import UserRequest
from learners.selectors import course_for_member, user_can_teach
from material.chunking import OVERLAP_MAX_TOKENS, SECTION_SEPARATOR
from material.models import Chunk, Material

LIBRARY_PAGE_SIZE = 25
PASSAGES_PAGE_SIZE = 30


@dataclass
class Passage:
    chunk: Chunk
    # Headings that open before this passage: (level 2-6, text).
    headings: list[tuple[int, str]]
    html: SafeString


def passage_text_without_overlap(previous: str, text: str) -> str:
    """``text`` without the words it repeats from the end of ``previous`` (long
    paragraphs are cut into chunks that overlap, which a reader should not see twice)."""
    before, words = previous.split(), text.split()
    # The overlap is at most OVERLAP_MAX_TOKENS tokens, so at most that many words.
    for size in range(min(len(before), len(words), OVERLAP_MAX_TOKENS), 0, -1):
        if before[-size:] == words[:size]:
            return " ".join(words[size:])
    return text


def _headings(previous_section: str | None, section: str) -> list[tuple[int, str]]:
    if section == previous_section:
        return []
    old = previous_section.split(SECTION_SEPARATOR) if previous_section else []
    new = section.split(SECTION_SEPARATOR) if section else []
    same = 0
    while same < min(len(old), len(new)) and old[same] == new[same]:
        same += 1
    return [(min(level + 2, 6), text) for level, text in enumerate(new) if level >= same]


def passages_for_page(chunks: list[Chunk], previous: Chunk | None) -> list[Passage]:
    passages = []
    for chunk in chunks:
        text = chunk.text
        if previous is not None and previous.section == chunk.section:
            text = passage_text_without_overlap(previous.text, text)
        section = previous.section if previous is not None else None
        passages.append(Passage(chunk, _headings(section, chunk.section), reply_html(text=text)))
        previous = chunk
    return passages


@require_GET
@login_required
def library(request: UserRequest, course_id: int) -> HttpResponse:
    """The course's ready materials, filtered by title, a page at a time."""
    course = course_for_member(user=request.user, course_id=course_id)
    title = request.GET.get("title", "").strip()[:200]
    materials = (
        Material.objects.for_course(course)
        .filter(status=Material.Status.READY)
        .only("id", "title", "kind", "original_name", "ingested_at", "course_id")
        .order_by("title", "pk")
    )
    if title:
        materials = materials.filter(title__icontains=title)
    page = Paginator(materials, LIBRARY_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "tutor/library.html",
        {
            "course": course,
            "page_obj": page,
            "title_filter": title,
            "is_teacher": user_can_teach(user=request.user, course=course),
        },
    )


@require_GET
@login_required
def material_detail(request: UserRequest, course_id: int, material_id: int) -> HttpResponse:
    """A material's passages in order, each with an anchor (``#chunk-<id>``); a citation
    link's ``?passage=<id>`` opens the page that holds that passage."""
    course = course_for_member(user=request.user, course_id=course_id)
    is_teacher = user_can_teach(user=request.user, course=course)
    materials = Material.objects.for_course(course)
    if not is_teacher:
        materials = materials.filter(status=Material.Status.READY)
    material = get_object_or_404(materials, pk=material_id)
    chunks = Chunk.objects.filter(material=material).only(
        "id", "position", "section", "page", "text", "material_id"
    )
    page_number: str | int | None = request.GET.get("page")
    passage = request.GET.get("passage", "")
    if passage.isdigit():
        position = chunks.filter(pk=int(passage)).values_list("position", flat=True).first()
        if position is not None:
            page_number = chunks.filter(position__lt=position).count() // PASSAGES_PAGE_SIZE + 1
    page = Paginator(chunks.order_by("position"), PASSAGES_PAGE_SIZE).get_page(page_number)
    rows = list(page.object_list)
    previous = None
    if rows and page.number > 1:
        previous = chunks.filter(position__lt=rows[0].position).order_by("-position").first()
    return render(
        request,
        "tutor/material_detail.html",
        {
            "course": course,
            "material": material,
            "page_obj": page,
            "passages": passages_for_page(rows, previous),
            "is_teacher": is_teacher,
        },
    )
