"""Signing in by email: password reset and the first sign-in of an enrolled person.

Both use Django's own password-reset tokens and views (``config/urls.py``) in our
layout. Mail goes through Django's email backend from a Celery task, so a reset for an
unknown address answers exactly like one for a known address, at the same speed.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings
from django.contrib.auth.forms import PasswordResetForm
from django.contrib.auth.tokens import default_token_generator
from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django.utils.translation import override

from config.celery import enqueue_on_commit
from learners.models import User


class PasswordResetByEmailForm(PasswordResetForm):
    """Django's reset form, also for people who never chose a password (enrolled from a
    file or invited), and sending through the email task."""

    def get_users(self, email: str):
        users = User.objects.filter(email__iexact=email, is_active=True)
        return (user for user in users if user.email.casefold() == email.casefold())

    def send_mail(
        self,
        subject_template_name,
        email_template_name,
        context,
        from_email,
        to_email,
        html_email_template_name=None,
    ) -> None:
        with override(context["user"].preferred_language):
            subject = render_to_string(subject_template_name, context)
            body = render_to_string(email_template_name, context)
        email_enqueue(subject=subject, body=body, to=to_email)


def email_enqueue(*, subject: str, body: str, to: str) -> None:
    """Send one email through Django's backend from the worker, after the commit."""
    from learners.tasks import email_send

    enqueue_on_commit(email_send, " ".join(subject.splitlines()).strip(), body, to)


def first_sign_in_url(*, user: User) -> str:
    """The link in a new account's first email, where its owner chooses a password."""
    path = reverse(
        "first-sign-in",
        kwargs={
            "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
            "token": default_token_generator.make_token(user),
        },
    )
    return settings.SITE_URL.rstrip("/") + path


def first_sign_in_send(*, user: User) -> bool:
    """Email ``user`` the link to choose a password (nothing without an address)."""
    if not user.email:
        return False
    context = {"user": user, "url": first_sign_in_url(user=user), "site_url": settings.SITE_URL}
    with override(user.preferred_language):
        subject = render_to_string("registration/first_sign_in_subject.txt", context)
        body = render_to_string("registration/first_sign_in_email.txt", context)
    return bool(send_mail(" ".join(subject.splitlines()).strip(), body, None, [user.email]))


def first_sign_in_enqueue(*, users: Iterable[User]) -> None:
    """Send each new account its first sign-in email once the transaction commits."""
    from learners.tasks import first_sign_in_emails_send

    ids = [user.pk for user in users if user.email]
    if ids:
        enqueue_on_commit(first_sign_in_emails_send, ids)
