"""Notices: a grade released, a regrade answered. Shown in the app (home, the notices
page) and emailed when the person allows it in their profile."""

from __future__ import annotations

from django.conf import settings
from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.translation import override

from config.celery import enqueue_on_commit
from learners.models import Course, LearnerProfile, Notice, User

NOTICES_PAGE_SIZE = 20


def notice_send(*, user: User, course: Course, kind: str, title: str, url: str) -> Notice:
    """Record a notice for ``user`` and, if they asked for email, send it after commit."""
    notice = Notice.objects.create(user=user, course=course, kind=kind, title=title, url=url)
    if LearnerProfile.objects.filter(user=user, email_notices=True).exists() and user.email:
        from learners.tasks import notice_email_send

        enqueue_on_commit(notice_email_send, notice.pk)
    return notice


def notice_email(*, notice_id: int) -> bool:
    """Email one notice, claimed first so a redelivered task sends nothing twice."""
    claimed = Notice.objects.filter(pk=notice_id, emailed_at__isnull=True).update(
        emailed_at=timezone.now()
    )
    if not claimed:
        return False
    notice = Notice.objects.select_related("user", "course").get(pk=notice_id)
    context = {"notice": notice, "url": settings.SITE_URL.rstrip("/") + notice.url}
    with override(notice.user.preferred_language):
        body = render_to_string("learners/notice_email.txt", context)
    try:
        send_mail(notice.title, body, None, [notice.user.email])
    except OSError:
        Notice.objects.filter(pk=notice_id).update(emailed_at=None)
        raise
    return True


def notices_for_user(*, user: User):
    return Notice.objects.filter(user=user).select_related("course")


def notices_unread_count(*, user: User) -> int:
    return Notice.objects.filter(user=user).unread().count()


def notice_mark_read(*, notice: Notice) -> None:
    if notice.read_at is None:
        Notice.objects.filter(pk=notice.pk, read_at__isnull=True).update(read_at=timezone.now())


def notices_mark_all_read(*, user: User) -> int:
    return Notice.objects.filter(user=user).unread().update(read_at=timezone.now())
