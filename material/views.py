"""Pages of course material: the teacher's material page (upload with live progress)
and search. Reading material (the library, a material's passages) is in
``material/library_views.py``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from learners.http import UserRequest
from learners.selectors import course_for_member, course_for_teacher
from material.models import Material
from material.retrieval import chunks_search
from material.services import (
    MaterialBusy,
    material_delete,
    material_reingest,
    material_rename,
    material_upload,
)

if TYPE_CHECKING:
    from learners.models import Course


SEARCH_K = 10


def _materials_context(course: Course) -> dict:
    materials = list(Material.objects.for_course(course).order_by("-created", "-pk"))
    return {
        "course": course,
        "materials": materials,
        "polling": any(m.is_unfinished for m in materials),
        "upload_limit_mb": settings.UPLOAD_MAX_BYTES // (1024 * 1024),
    }


@require_GET
@login_required
def materials_page(request: UserRequest, course_id: int) -> HttpResponse:
    course = course_for_teacher(user=request.user, course_id=course_id)
    template = "tutor/materials.html"
    if request.htmx:
        template += "#material-list"
    return render(request, template, _materials_context(course))


@require_POST
@login_required
def material_upload_view(request: UserRequest, course_id: int) -> HttpResponse:
    course = course_for_teacher(user=request.user, course_id=course_id)
    files = request.FILES.getlist("files")
    for file in files:
        material_upload(course=course, file=file, uploaded_by=request.user)
    if not files:
        messages.error(request, _("Choose one or more files to upload."))
    if request.htmx:
        return render(request, "tutor/materials.html#material-list", _materials_context(course))
    return redirect("tutor:materials", course_id=course.pk)


@require_POST
@login_required
def material_delete_view(request: UserRequest, course_id: int, material_id: int) -> HttpResponse:
    course = course_for_teacher(user=request.user, course_id=course_id)
    material = Material.objects.for_course(course).filter(pk=material_id).first()
    notice = ""
    if material is not None:  # gone already (a second click): the list shows it is
        try:
            material_delete(material=material)
        except MaterialBusy as busy:
            notice = str(busy)
    if request.htmx:
        context = {**_materials_context(course), "notice": notice, "oob": True}
        listing = render(request, "tutor/materials.html#material-list", context)
        listing.write(render(request, "tutor/materials.html#material-notice", context).content)
        return listing
    if notice:
        messages.error(request, notice)
    return redirect("tutor:materials", course_id=course.pk)


@require_POST
@login_required
def material_reingest_view(request: UserRequest, course_id: int, material_id: int) -> HttpResponse:
    course = course_for_teacher(user=request.user, course_id=course_id)
    material = get_object_or_404(Material.objects.for_course(course), pk=material_id)
    if material.can_process_again:
        material_reingest(material=material)
        refused = ""
    else:
        refused = _(
            "Processing “%(title)s” again would end the same way: upload a corrected file instead."
        ) % {"title": material.title}
    if request.htmx:
        context = _materials_context(course)
        context.update(row_error=refused, row_id=material.pk)
        return render(request, "tutor/materials.html#material-list", context)
    if refused:
        messages.error(request, refused)
    return redirect("tutor:materials", course_id=course.pk)


@require_POST
@login_required
def material_rename_view(request: UserRequest, course_id: int, material_id: int) -> HttpResponse:
    course = course_for_teacher(user=request.user, course_id=course_id)
    material = get_object_or_404(Material.objects.for_course(course), pk=material_id)
    typed = request.POST.get("title", "")
    try:
        material_rename(material=material, title=typed)
    except ValidationError as error:
        if request.htmx:
            context = _materials_context(course)
            context.update(row_error=" ".join(error.messages), row_id=material.pk, renaming=True)
            return render(request, "tutor/materials.html#material-list", context)
        messages.error(request, " ".join(error.messages))
        return redirect("tutor:materials", course_id=course.pk)
    if request.htmx:
        return render(request, "tutor/materials.html#material-list", _materials_context(course))
    messages.success(request, _("The material is renamed."))
    return redirect("tutor:materials", course_id=course.pk)


@require_GET
@login_required
def search_page(request: UserRequest, course_id: int) -> HttpResponse:
    course = course_for_member(user=request.user, course_id=course_id)
    query = request.GET.get("q", "")
    results = chunks_search(
        course=course, user=request.user, query=query, k=SEARCH_K, highlight=True
    )
    template = "tutor/search.html"
    if request.htmx:
        template += "#results"
    return render(request, template, {"course": course, "query": query, "results": results})
