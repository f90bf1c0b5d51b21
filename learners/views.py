from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LoginView
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from config.safe_redirect import safe_next_url
from learners.consent import consent_record
from learners.models import AIConsent
from learners.selectors import course_for_member, home_courses, membership_role
from learners.throttle import login_failure_record, login_failures_clear, login_is_throttled


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


class ThrottledLoginView(LoginView):
    """Django's login view, refusing further attempts after repeated failures."""

    http_method_names = ["get", "post"]

    def post(self, request, *args, **kwargs):
        username = request.POST.get("username", "")
        if login_is_throttled(request=request, username=username):
            minutes = max(1, settings.LOGIN_THROTTLE_SECONDS // 60)
            form = self.get_form()
            context = self.get_context_data(form=form, throttled_minutes=minutes)
            return self.render_to_response(context, status=429)
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form):
        login_failure_record(request=self.request, username=self.request.POST.get("username", ""))
        return super().form_invalid(form)

    def form_valid(self, form):
        login_failures_clear(request=self.request, username=form.get_user().get_username())
        return super().form_valid(form)


@require_http_methods(["GET", "POST"])
@login_required
def consent(request: HttpRequest) -> HttpResponse:
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
