"""Pages of people in a course (``people:`` names): the roster, enrolment from a CSV
file, invitation links and joining with one, and the staff's administration home."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import UserCreationForm
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from learners.enrolment import (
    ENROLMENT_CSV_MAX_BYTES,
    ENROLMENT_CSV_MAX_ROWS,
    EnrolmentNotClean,
    enrolment_import,
    enrolment_preview,
)
from learners.http import UserRequest
from learners.invitations import (
    INVITATION_DAYS,
    invitation_accept,
    invitation_create,
    invitation_revoke,
    invitation_state,
    invitations_for_course,
)
from learners.models import Course, Invitation, Membership, User
from learners.roster import ROSTER_PAGE_SIZE, membership_remove, roster_for_course
from learners.selectors import course_for_teacher

STAFF_COURSES_PAGE_SIZE = 50


def _invitation_url(request: HttpRequest, invitation: Invitation) -> str:
    return request.build_absolute_uri(reverse("people:join", args=[invitation.token]))


@require_GET
@login_required
def roster(request: UserRequest, course_id: int) -> HttpResponse:
    """Who is in the course, when they last signed in; remove; invitation links."""
    course = course_for_teacher(user=request.user, course_id=course_id)
    query = request.GET.get("q", "")[:100]
    role = request.GET.get("role", "")
    page = Paginator(roster_for_course(course=course, query=query, role=role), ROSTER_PAGE_SIZE)
    invitations = [
        (invitation, _invitation_url(request, invitation))
        for invitation in invitations_for_course(course=course)
    ]
    return render(
        request,
        "people/roster.html",
        {
            "course": course,
            "page_obj": page.get_page(request.GET.get("page")),
            "query": query,
            "role": role,
            "roles": Membership.Role.choices,
            "invitations": invitations,
            "invitation_days": INVITATION_DAYS,
            "can_invite_teachers": request.user.is_staff,
        },
    )


@require_http_methods(["GET", "POST"])
@login_required
def member_remove(request: UserRequest, course_id: int, membership_id: int) -> HttpResponse:
    """A page that asks before removing (no script needed), then removes on POST."""
    course = course_for_teacher(user=request.user, course_id=course_id)
    membership = get_object_or_404(
        Membership.objects.select_related("user"), course=course, pk=membership_id
    )
    if request.method == "POST":
        try:
            membership_remove(membership=membership, actor=request.user)
        except PermissionDenied as error:
            messages.error(request, str(error))
        else:
            messages.success(
                request,
                _("%(name)s is no longer in %(course)s.")
                % {"name": membership.user.name, "course": course.title},
            )
        return redirect("people:roster", course_id=course.pk)
    context = {"course": course, "membership": membership}
    return render(request, "people/member_remove.html", context)


def _enrolment_data(request: HttpRequest) -> tuple[bytes | None, str]:
    """The CSV's bytes from an upload or the text box, and the text to show back."""
    upload = request.FILES.get("file")
    if upload is not None:
        if (upload.size or 0) > ENROLMENT_CSV_MAX_BYTES:
            return upload.read(ENROLMENT_CSV_MAX_BYTES + 1), ""
        data = upload.read()
        try:
            return data, data.decode("utf-8-sig")
        except UnicodeDecodeError:
            return data, ""
    text = request.POST.get("csv", "")
    if not text.strip():
        return None, ""
    return text.encode("utf-8"), text


@require_http_methods(["GET", "POST"])
@login_required
def enrol(request: UserRequest, course_id: int) -> HttpResponse:
    """Enrol from a CSV: upload or paste, preview every problem, then import all at once."""
    course = course_for_teacher(user=request.user, course_id=course_id)
    context = {
        "course": course,
        "max_rows": ENROLMENT_CSV_MAX_ROWS,
        "max_mb": ENROLMENT_CSV_MAX_BYTES // (1024 * 1024),
        "csv": "",
        "preview": None,
    }
    if request.method == "GET":
        return render(request, "people/enrol.html", context)
    data, text = _enrolment_data(request)
    context["csv"] = text
    if data is None:
        messages.error(request, _("Choose a CSV file or paste the rows."))
        return render(request, "people/enrol.html", context, status=400)
    if request.POST.get("action") == "import":
        try:
            result = enrolment_import(course=course, data=data, actor=request.user)
        except EnrolmentNotClean as error:
            context["preview"] = error.preview
            messages.error(request, _("Nothing was imported: fix the problems below first."))
            return render(request, "people/enrol.html", context, status=400)
        messages.success(
            request,
            _(
                "Enrolled %(enrolled)d, changed %(changed)d roles, %(created)d new accounts "
                "(each gets an email to choose a password), %(unchanged)d already enrolled."
            )
            % {
                "enrolled": result.enrolled,
                "changed": result.role_changes,
                "created": len(result.created),
                "unchanged": result.unchanged,
            },
        )
        return redirect("people:roster", course_id=course.pk)
    preview = enrolment_preview(course=course, data=data, actor=request.user)
    context["preview"] = preview
    return render(request, "people/enrol.html", context, status=200 if preview.is_clean else 400)


@require_POST
@login_required
def invitation_new(request: UserRequest, course_id: int) -> HttpResponse:
    course = course_for_teacher(user=request.user, course_id=course_id)
    try:
        days = int(request.POST.get("days", ""))
    except ValueError:
        days = 0
    try:
        invitation_create(
            course=course, role=request.POST.get("role", ""), days=days, actor=request.user
        )
    except (ValidationError, PermissionDenied) as error:
        messages.error(request, " ".join(getattr(error, "messages", [str(error)])))
    else:
        messages.success(request, _("Invitation link created: copy it from the list below."))
    return redirect(reverse("people:roster", args=[course.pk]) + "#invitations")


@require_POST
@login_required
def invitation_revoke_view(
    request: UserRequest, course_id: int, invitation_id: int
) -> HttpResponse:
    course = course_for_teacher(user=request.user, course_id=course_id)
    invitation_revoke(invitation=get_object_or_404(Invitation, course=course, pk=invitation_id))
    messages.success(request, _("The invitation link no longer works."))
    return redirect(reverse("people:roster", args=[course.pk]) + "#invitations")


class JoinSignupForm(UserCreationForm):
    """A new account made from an invitation: username, name, email and password."""

    display_name = forms.CharField(label=gettext_lazy("Your name"), max_length=150)
    email = forms.EmailField(
        label=gettext_lazy("Email (for signing in again if you forget your password)")
    )

    class Meta(UserCreationForm.Meta):
        model = User
        fields = ("username", "display_name", "email")


def _join_context(invitation: Invitation, request: HttpRequest, **extra) -> dict:
    member = (
        Membership.objects.filter(user=request.user, course=invitation.course).first()
        if request.user.is_authenticated
        else None
    )
    return {"invitation": invitation, "course": invitation.course, "member": member, **extra}


@require_http_methods(["GET", "POST"])
def join(request: HttpRequest, token: str) -> HttpResponse:
    """The invitation link. Signed in: join with one button; otherwise log in or make an
    account here. An unknown, expired or revoked link gets a page that says which."""
    invitation = Invitation.objects.select_related("course").filter(token=token[:64]).first()
    if invitation is None:
        return render(request, "people/join_unusable.html", {"state": "unknown"}, status=404)
    state = invitation_state(invitation=invitation)
    if state != "usable":
        return render(
            request,
            "people/join_unusable.html",
            {"state": state, "invitation": invitation},
            status=410,
        )
    if request.method == "POST":
        if request.user.is_authenticated:
            membership = invitation_accept(invitation=invitation, user=request.user)
        else:
            form = JoinSignupForm(request.POST)
            if not form.is_valid():
                return render(
                    request,
                    "people/join.html",
                    _join_context(invitation, request, form=form),
                    status=400,
                )
            with transaction.atomic():
                user = form.save()
                membership = invitation_accept(invitation=invitation, user=user)
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(
            request,
            _("Welcome to %(course)s (%(role)s).")
            % {"course": invitation.course.title, "role": membership.get_role_display()},
        )
        return redirect("course-detail", course_id=invitation.course_id)
    return render(
        request, "people/join.html", _join_context(invitation, request, form=JoinSignupForm())
    )


@require_GET
@login_required
def staff_home(request: UserRequest) -> HttpResponse:
    """Every staff page in one place, and each course's people, usage and material."""
    if not request.user.is_staff:
        raise Http404("Only administrators may open this page.")
    courses = Paginator(Course.objects.order_by("title", "pk"), STAFF_COURSES_PAGE_SIZE)
    return render(
        request,
        "people/staff_home.html",
        {"page_obj": courses.get_page(request.GET.get("page"))},
    )
