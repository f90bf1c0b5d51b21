"""The notices page: grades released and regrades answered, newest first."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from learners.http import UserRequest
from learners.models import Notice
from learners.notices import (
    NOTICES_PAGE_SIZE,
    notice_mark_read,
    notices_for_user,
    notices_mark_all_read,
)


@require_GET
@login_required
def notices_page(request: UserRequest) -> HttpResponse:
    page = Paginator(notices_for_user(user=request.user), NOTICES_PAGE_SIZE)
    return render(
        request, "learners/notices.html", {"page_obj": page.get_page(request.GET.get("page"))}
    )


@require_GET
@login_required
def notice_open(request: UserRequest, notice_id: int) -> HttpResponse:
    """Mark the notice read and go where it points."""
    notice = get_object_or_404(Notice, user=request.user, pk=notice_id)
    notice_mark_read(notice=notice)
    if not url_has_allowed_host_and_scheme(notice.url, allowed_hosts=None):
        return redirect("notices")
    return redirect(notice.url)


@require_POST
@login_required
def notices_read_all(request: UserRequest) -> HttpResponse:
    notices_mark_all_read(user=request.user)
    return redirect("notices")
