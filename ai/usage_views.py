"""The staff page of one course's language model usage and cost."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from ai.usage import course_llm_usage
from learners.http import UserRequest
from learners.models import Course

DEFAULT_DAYS = 30
MAX_DAYS = 366


def _days(request: HttpRequest) -> int:
    try:
        days = int(request.GET.get("days", DEFAULT_DAYS))
    except ValueError:
        return DEFAULT_DAYS
    return min(max(days, 1), MAX_DAYS)


@require_GET
@login_required
def course_usage(request: UserRequest, course_id: int) -> HttpResponse:
    # Staff only: a course's teacher sees no more than anyone else (404, not 403, so the
    # page does not tell who may see it).
    if not request.user.is_staff:
        raise Http404
    course = get_object_or_404(Course, pk=course_id)
    usage = course_llm_usage(course=course, days=_days(request))
    return render(request, "usage/course_usage.html", {"usage": usage, "course": course})
