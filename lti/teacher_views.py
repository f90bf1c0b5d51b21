"""The teacher's view of a course's LMS link: which LMS courses feed it, when the roster
last synced, and each grade sent to the LMS gradebook (sent, waiting, failed and why)."""

from __future__ import annotations

from django.contrib import messages as flash
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from learners.http import UserRequest
from learners.selectors import course_for_teacher
from lti.ags import score_post_retry
from lti.models import LtiContext, LtiScorePost


@require_GET
@login_required
def course_lms(request: UserRequest, course_id: int) -> HttpResponse:
    course = course_for_teacher(user=request.user, course_id=course_id)
    contexts = LtiContext.objects.filter(course=course).select_related("platform")
    posts = (
        LtiScorePost.objects.filter(context__course=course)
        .select_related("submission__assignment", "submission__learner", "context")
        .order_by("-updated_at")[:500]
    )
    return render(
        request, "lti/course_lms.html", {"course": course, "contexts": contexts, "posts": posts}
    )


@require_POST
@login_required
def score_post_retry_view(request: UserRequest, course_id: int, post_id: int) -> HttpResponse:
    course = course_for_teacher(user=request.user, course_id=course_id)
    post = get_object_or_404(LtiScorePost, pk=post_id, context__course=course)
    score_post_retry(post=post)
    flash.success(request, _("The grade will be sent to the LMS again."))
    return redirect("lti:course-lms", course_id=course.pk)
