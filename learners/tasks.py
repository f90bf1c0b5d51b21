"""Thin tasks of people and courses (email): ids in, one service call."""

from __future__ import annotations

from celery import shared_task


@shared_task(
    name="learners.tasks.email_send",
    autoretry_for=(OSError,),
    max_retries=5,
    retry_backoff=True,
)
def email_send(subject: str, body: str, to: str) -> int:
    """One email through Django's email backend (console in development)."""
    from django.core.mail import send_mail

    return send_mail(subject, body, None, [to])


@shared_task(name="learners.tasks.first_sign_in_emails_send")
def first_sign_in_emails_send(user_ids: list[int]) -> int:
    """The first sign-in email of each new account (enrolled from a file)."""
    from learners.accounts import first_sign_in_send
    from learners.models import User

    users = list(User.objects.filter(pk__in=user_ids, is_active=True))
    for user in users:
        first_sign_in_send(user=user)
    return len(users)


@shared_task(name="learners.tasks.notice_email_send")
def notice_email_send(notice_id: int) -> bool:
    """Email one notice to its user, once (a redelivery finds it already sent)."""
    from learners.notices import notice_email

    return notice_email(notice_id=notice_id)
