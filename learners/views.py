from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from learners.selectors import course_for_member, home_courses, membership_role


@require_GET
@login_required
def home(request: HttpRequest) -> HttpResponse:
    courses = home_courses(user=request.user)
    return render(
        request,
        "learners/home.html",
        {"studying": courses["studying"], "teaching": courses["teaching"]},
    )


@require_GET
@login_required
def course_detail(request: HttpRequest, course_id: int) -> HttpResponse:
    course = course_for_member(user=request.user, course_id=course_id)
    role = membership_role(user=request.user, course=course)
    is_teacher = role == "teacher" or request.user.is_staff
    return render(
        request,
        "learners/course_detail.html",
        {"course": course, "role": role, "is_teacher": is_teacher},
    )
