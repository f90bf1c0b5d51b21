"""People, courses and who plays which role in which course.

Roles are per course (a person can teach one course and study in another); site
administrators are Django staff users.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils.text import slugify
from django.utils.translation import gettext_lazy as _


class User(AbstractUser):
    display_name = models.CharField(_("display name"), max_length=150, blank=True)
    preferred_language = models.CharField(
        _("preferred language"),
        max_length=10,
        choices=settings.LANGUAGES,
        default=settings.LANGUAGE_CODE,
    )
    birth_date = models.DateField(
        _("birth date"),
        null=True,
        blank=True,
        help_text=_("Used only to decide whether a guardian's or school's consent is needed."),
    )

    def __str__(self) -> str:
        return self.display_name or self.get_full_name() or self.username

    @property
    def name(self) -> str:
        return str(self)


class CourseQuerySet(models.QuerySet):
    def for_member(self, user, *, role: str | None = None) -> CourseQuerySet:
        """Courses ``user`` belongs to, optionally only in ``role``."""
        if not user.is_authenticated:
            return self.none()
        memberships = Membership.objects.filter(user=user)
        if role is not None:
            memberships = memberships.filter(role=role)
        return self.filter(pk__in=memberships.values("course_id"))

    def visible_to(self, user) -> CourseQuerySet:
        """Courses a user may open: members see theirs, staff see all."""
        if user.is_authenticated and user.is_staff:
            return self.all()
        return self.for_member(user)


class Course(models.Model):
    title = models.CharField(_("title"), max_length=200)
    slug = models.SlugField(_("slug"), max_length=80, unique=True)
    description = models.TextField(_("description"), blank=True)
    requires_ai_consent = models.BooleanField(
        _("requires consent to AI processing"),
        default=False,
        help_text=_("Learners must consent before the tutor or AI grading process their work."),
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = CourseQuerySet.as_manager()

    class Meta:
        ordering = ["title"]
        verbose_name = _("course")
        verbose_name_plural = _("courses")

    def __str__(self) -> str:
        return self.title

    def save(self, *args, **kwargs) -> None:
        if not self.slug:
            self.slug = slugify(self.title)[:80]
        super().save(*args, **kwargs)


class Membership(models.Model):
    class Role(models.TextChoices):
        STUDENT = "student", _("Student")
        TEACHER = "teacher", _("Teacher")

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    course = models.ForeignKey(Course, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(_("role"), max_length=10, choices=Role.choices)
    joined_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "course"], name="one_membership_per_course"),
            models.CheckConstraint(
                condition=models.Q(role__in=["student", "teacher"]), name="membership_role_known"
            ),
        ]
        verbose_name = _("membership")
        verbose_name_plural = _("memberships")

    def __str__(self) -> str:
        return f"{self.user} — {self.get_role_display()} — {self.course}"


class AIConsent(models.Model):
    """Consent to AI processing, one row per grant, kept with its time and wording version.

    A learner under ``AI_CONSENT_MIN_AGE`` needs a grant given by a guardian or the school;
    a later withdrawal is a new row with ``granted=False``, so the history stays readable.
    """

    class GivenBy(models.TextChoices):
        LEARNER = "learner", _("The learner")
        GUARDIAN = "guardian", _("A parent or guardian")
        SCHOOL = "school", _("The school")

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="ai_consents"
    )
    granted = models.BooleanField(default=True)
    given_by = models.CharField(max_length=10, choices=GivenBy.choices)
    version = models.CharField(max_length=20)
    recorded_at = models.DateTimeField(auto_now_add=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )

    class Meta:
        ordering = ["-recorded_at", "-id"]
        verbose_name = _("consent to AI processing")
        verbose_name_plural = _("consents to AI processing")

    def __str__(self) -> str:
        state = "granted" if self.granted else "withdrawn"
        return f"{self.user} {state} v{self.version} ({self.get_given_by_display()})"


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs):  # pragma: no cover - the database refuses it anyway
        raise TypeError("Audit events are append-only.")

    def delete(self):  # pragma: no cover - the database refuses it anyway
        raise TypeError("Audit events are append-only.")


class AuditEvent(models.Model):
    """An append-only record of a consequential change: grades, roles, exports, erasures.

    The database itself refuses UPDATE and DELETE on this table (a trigger in the
    migration), so not even a bug or a raw query in the application can rewrite history.
    The actor is kept as an id and a name snapshot rather than a foreign key, so erasing
    a person never needs to touch these rows.
    """

    class Action(models.TextChoices):
        GRADE_CHANGED = "grade_changed", _("Grade changed")
        ROLE_CHANGED = "role_changed", _("Role changed")
        DATA_EXPORTED = "data_exported", _("Data exported")
        ACCOUNT_ERASED = "account_erased", _("Account erased")

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    action = models.CharField(max_length=32, choices=Action.choices, db_index=True)
    actor_id = models.BigIntegerField(null=True, blank=True)
    actor_label = models.CharField(max_length=150, blank=True)
    course_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    target_type = models.CharField(max_length=64)
    target_id = models.CharField(max_length=64)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    reason = models.TextField(blank=True)
    details = models.JSONField(default=dict, blank=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("audit event")
        verbose_name_plural = _("audit events")

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.get_action_display()} {self.target_type}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None:
            raise TypeError("Audit events are append-only.")
        super().save(*args, **kwargs)
