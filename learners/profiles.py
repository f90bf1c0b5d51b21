"""Learner profiles: onboarding, preferences, and applying them to every page.

- ``profile_for`` / ``profile_update`` read and write a learner's profile.
- ``PreferredLanguageMiddleware`` switches the interface to the signed-in user's
  preferred language (the login page still follows the browser's).
- ``learner_preferences`` is a context processor: the accessibility preferences as classes
  for ``<body>``.
"""

from __future__ import annotations

from collections.abc import Callable

from django import forms
from django.conf import settings
from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone, translation
from django.utils.translation import gettext_lazy as _

from learners.models import LearnerProfile, User


def profile_for(*, user: User) -> LearnerProfile:
    """The user's profile, unsaved and with defaults when they never filled it in."""
    try:
        return LearnerProfile.objects.get(user=user)
    except LearnerProfile.DoesNotExist:
        return LearnerProfile(user=user)


@transaction.atomic
def profile_update(
    *,
    user: User,
    preferred_language: str,
    goals: str = "",
    level: str = LearnerProfile.Level.BEGINNER,
    interests: str = "",
    larger_text: bool = False,
    dyslexia_font: bool = False,
    reduced_motion: bool = False,
    read_aloud: bool = False,
    email_notices: bool = False,
) -> LearnerProfile:
    """Save the profile and the preferred language; the first save completes onboarding."""
    if preferred_language not in dict(settings.LANGUAGES):
        raise ValueError(f"unknown language {preferred_language!r}")
    if level not in LearnerProfile.Level.values:
        raise ValueError(f"unknown level {level!r}")
    profile, _created = LearnerProfile.objects.select_for_update().get_or_create(user=user)
    profile.goals = goals.strip()
    profile.level = level
    profile.interests = interests.strip()
    profile.larger_text = larger_text
    profile.dyslexia_font = dyslexia_font
    profile.reduced_motion = reduced_motion
    profile.read_aloud = read_aloud
    profile.email_notices = email_notices
    if profile.onboarded_at is None:
        profile.onboarded_at = timezone.now()
    profile.save()
    if user.preferred_language != preferred_language:
        user.preferred_language = preferred_language
        user.save(update_fields=["preferred_language"])
    return profile


def profile_is_onboarded(*, user: User) -> bool:
    return LearnerProfile.objects.filter(user=user, onboarded_at__isnull=False).exists()


class ProfileForm(forms.Form):
    preferred_language = forms.ChoiceField(
        label=_("Language of the pages and the tutor"), choices=settings.LANGUAGES
    )
    goals = forms.CharField(
        label=_("What do you want to achieve?"),
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
    )
    level = forms.ChoiceField(
        label=_("How much do you know already?"), choices=LearnerProfile.Level.choices
    )
    interests = forms.CharField(
        label=_("Your interests (the tutor can use them in examples)"),
        required=False,
        max_length=1000,
    )
    larger_text = forms.BooleanField(label=_("Larger text"), required=False)
    dyslexia_font = forms.BooleanField(label=_("Dyslexia-friendly font"), required=False)
    reduced_motion = forms.BooleanField(label=_("Reduce motion"), required=False)
    read_aloud = forms.BooleanField(label=_("Read the tutor's replies aloud"), required=False)
    email_notices = forms.BooleanField(
        label=_("Email me when a grade is released or a regrade is answered"), required=False
    )

    @classmethod
    def initial_for(cls, *, user: User, profile: LearnerProfile) -> dict:
        return {
            "preferred_language": user.preferred_language,
            "goals": profile.goals,
            "level": profile.level,
            "interests": profile.interests,
            "larger_text": profile.larger_text,
            "dyslexia_font": profile.dyslexia_font,
            "reduced_motion": profile.reduced_motion,
            "read_aloud": profile.read_aloud,
            "email_notices": profile.email_notices,
        }


class PreferredLanguageMiddleware:
    """Activate the signed-in user's preferred language for the whole request.

    Goes after ``AuthenticationMiddleware`` (and ``LocaleMiddleware``, whose choice from
    the browser it overrides for signed-in users).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            language = user.preferred_language
            if language in dict(settings.LANGUAGES):
                translation.activate(language)
                request.LANGUAGE_CODE = language
        return self.get_response(request)


# The columns the base template needs on every page, read with one plain query: the ORM
# built this one-row query at three times the CPU of running it (issue 19: every page
# under 200 users on two cores).
_PREFERENCE_FIELDS = ("larger_text", "dyslexia_font", "reduced_motion", "read_aloud")
_PREFERENCES_SQL = (
    f"SELECT {', '.join(_PREFERENCE_FIELDS)}, onboarded_at IS NOT NULL"  # noqa: S608 - constants
    f" FROM {LearnerProfile._meta.db_table} WHERE user_id = %s"
)


def _preferences_row(user_id: int) -> tuple | None:
    """(larger_text, dyslexia_font, reduced_motion, read_aloud, onboarded) or None."""
    with connection.cursor() as cursor:
        cursor.execute(_PREFERENCES_SQL, [user_id])
        return cursor.fetchone()


def learner_preferences(request: HttpRequest) -> dict:
    """``pref_body_classes`` for ``<body class="...">`` and ``learner_onboarded``; one
    query, only when signed in."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"pref_body_classes": "", "learner_onboarded": False}
    row = _preferences_row(user.pk)
    if row is None:
        return {"pref_body_classes": "", "learner_onboarded": False}
    *flags, onboarded = row
    profile = LearnerProfile(**dict(zip(_PREFERENCE_FIELDS, flags, strict=True)))
    return {"pref_body_classes": profile.body_classes, "learner_onboarded": onboarded}
