"""The learner's own privacy page: download everything held about them, or erase it."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from learners.http import UserRequest
from privacy.personal_data import (
    ErasureUnavailable,
    privacy_erase,
    privacy_erase_check,
    privacy_export,
)


def privacy_export_response(*, data: bytes) -> HttpResponse:
    response = HttpResponse(data, content_type="application/zip")
    stamp = timezone.now().strftime("%Y%m%d")
    response["Content-Disposition"] = f'attachment; filename="data-export-{stamp}.zip"'
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "no-store"
    return response


@require_GET
@login_required
def privacy(request: UserRequest) -> HttpResponse:
    return render(request, "learners/privacy.html")


@require_POST
@login_required
def privacy_export_download(request: UserRequest) -> HttpResponse:
    data = privacy_export(user=request.user)
    return privacy_export_response(data=data)


@require_POST
@login_required
def privacy_erase_account(request: UserRequest) -> HttpResponse:
    """Erase the signed-in account once its username is typed as the confirmation."""
    user = request.user
    if request.POST.get("confirm", "").strip() != user.username:
        messages.error(request, _("Type your username exactly to confirm the erasure."))
        return redirect("privacy")
    try:
        privacy_erase_check()
    except ErasureUnavailable as error:
        messages.error(request, str(error))
        return redirect("privacy")
    logout(request)
    privacy_erase(user=user, actor=user)
    messages.success(request, _("Your account and your data are erased."))
    return redirect("login")
