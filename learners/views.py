from __future__ import annotations

import math

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LoginView
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from config.safe_redirect import safe_next_url
from learners.consent import consent_record
from learners.http import UserRequest
from learners.models import AIConsent
from learners.selectors import course_for_member, home_courses, membership_role
from learners.throttle import (
    login_attempt,
    login_device_remember,
    login_failure_record,
    login_success_record,
    login_wait_seconds,
)


@require_GET
@login_required
def home(request: UserRequest) -> HttpResponse:
    courses = home_courses(user=request.user)
    return render(
        request,
        "learners/home.html",
        {"studying": courses["studying"], "teaching": courses["teaching"]},
    )


@require_GET
@login_required
def course_detail(request: UserRequest, course_id: int) -> HttpResponse:
    course = course_for_member(user=request.user, course_id=course_id)
    role = membership_role(user=request.user, course=course)
    is_teacher = role == "teacher" or request.user.is_staff
    return render(
        request,
        "learners/course_detail.html",
        {"course": course, "role": role, "is_teacher": is_teacher},
    )


def _wait_context(seconds: int) -> dict:
    """How long to wait, in the unit a person reads: seconds under two minutes."""
    if seconds < 120:
        return {"wait_seconds": seconds}
    return {"wait_minutes": math.ceil(seconds / 60)}


class ThrottledLoginView(LoginView):
    """Django's login view, slowed down per account by repeated failures
    (learners/throttle.py): while a client must wait, 429 with Retry-After."""

    http_method_names = ["get", "post"]

    def post(self, request, *args, **kwargs):
        self.attempt = login_attempt(request, request.POST.get("username", ""))
        wait = login_wait_seconds(self.attempt)
        if wait:
            # An unbound form: its errors would check the password, which waiting must not.
            form = self.get_form_class()(request, initial={"username": self.attempt.username})
            context = self.get_context_data(form=form, **_wait_context(wait))
            response = self.render_to_response(context, status=429)
            response["Retry-After"] = str(wait)
            return response
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form):
        wait = login_failure_record(self.attempt)
        context = self.get_context_data(form=form, **(_wait_context(wait) if wait else {}))
        response = self.render_to_response(context)
        if wait:
            response["Retry-After"] = str(wait)
        return response

    def form_valid(self, form):
        login_success_record(self.attempt)
        response = super().form_valid(form)
        login_device_remember(self.request, response, form.get_user().get_username())
        return response


@require_http_methods(["GET", "POST"])
@login_required
def consent(request: UserRequest) -> HttpResponse:
    """The learner reads what AI processing means and grants or withdraws consent."""
    if request.method == "POST":
        granted = request.POST.get("decision") == "grant"
        consent_record(user=request.user, granted=granted, given_by=AIConsent.GivenBy.LEARNER)
        messages.success(
            request,
            _("Thank you: your consent is recorded.")
            if granted
            else _("Your consent is withdrawn; AI features are off for you."),
        )
        return redirect(safe_next_url(request, request.POST.get("next")) or "consent")
    latest = AIConsent.objects.filter(user=request.user).first()
    return render(
        request,
        "learners/consent.html",
        {
            "latest": latest,
            "next": safe_next_url(request, request.GET.get("next")),
            "version": settings.AI_CONSENT_VERSION,
        },
    )
