"""People, courses and who plays which role in which course.

Roles are per course (a person can teach one course and study in another); site
administrators are Django staff users.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AbstractUser, AnonymousUser
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
    def for_member(self, user: User | AnonymousUser, *, role: str | None = None) -> CourseQuerySet:
        """Courses ``user`` belongs to, optionally only in ``role``."""
        if not user.is_authenticated:
            return self.none()
        memberships = Membership.objects.filter(user=user)
        if role is not None:
            memberships = memberships.filter(role=role)
        return self.filter(pk__in=memberships.values("course_id"))

    def visible_to(self, user: User | AnonymousUser) -> CourseQuerySet:
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
    ai_daily_token_budget = models.PositiveIntegerField(
        _("daily AI token budget per learner"),
        null=True,
        blank=True,
        help_text=_(
            "Tokens each learner's tutor replies and AI grading may use per day in this "
            "course. Empty: the site's default; 0: no limit."
        ),
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

    @property
    def ai_token_budget(self) -> int | None:
        """Tokens a learner's AI features may use per day here; None for no limit."""
        budget = self.ai_daily_token_budget
        if budget is None:
            budget = settings.AI_DAILY_TOKEN_BUDGET
        return budget or None


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


# --- Learning: profiles, concepts, practice, review ---------------------------------------


class LearnerProfile(models.Model):
    """What a learner tells us about themselves, and how they want the pages to look.

    The preferred language lives on ``User``; the tutor reads this row for goals, level and
    interests. ``onboarded_at`` is empty until the first-login onboarding form is saved.
    """

    class Level(models.TextChoices):
        BEGINNER = "beginner", _("Beginner")
        INTERMEDIATE = "intermediate", _("Intermediate")
        ADVANCED = "advanced", _("Advanced")

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="learner_profile"
    )
    goals = models.TextField(_("goals"), blank=True, max_length=2000)
    level = models.CharField(
        _("level"), max_length=20, choices=Level.choices, default=Level.BEGINNER
    )
    interests = models.TextField(_("interests"), blank=True, max_length=1000)
    larger_text = models.BooleanField(_("larger text"), default=False)
    dyslexia_font = models.BooleanField(_("dyslexia-friendly font"), default=False)
    reduced_motion = models.BooleanField(_("reduced motion"), default=False)
    read_aloud = models.BooleanField(_("read tutor replies aloud"), default=False)
    email_notices = models.BooleanField(
        _("email me when a grade is released or a regrade is answered"), default=False
    )
    onboarded_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("learner profile")
        verbose_name_plural = _("learner profiles")

    def __str__(self) -> str:
        return f"{self.user} ({self.get_level_display()})"

    @property
    def body_classes(self) -> str:
        """CSS classes on ``<body>`` that apply the accessibility preferences."""
        flags = {
            "pref-larger-text": self.larger_text,
            "pref-dyslexia-font": self.dyslexia_font,
            "pref-reduced-motion": self.reduced_motion,
            "pref-read-aloud": self.read_aloud,
        }
        return " ".join(name for name, on in flags.items() if on)


class ConceptQuerySet(models.QuerySet):
    def for_course(self, course: Course) -> ConceptQuerySet:
        return self.filter(course=course)


class Concept(models.Model):
    course = models.ForeignKey(Course, on_delete=models.CASCADE, related_name="concepts")
    name = models.CharField(_("name"), max_length=200)
    description = models.TextField(_("description"), blank=True, max_length=4000)
    prerequisites = models.ManyToManyField(
        "self",
        symmetrical=False,
        blank=True,
        related_name="unlocks",
        verbose_name=_("prerequisites"),
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ConceptQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["course", "name"], name="concept_name_unique_in_course")
        ]
        verbose_name = _("concept")
        verbose_name_plural = _("concepts")

    def __str__(self) -> str:
        return self.name

    @property
    def skill_id(self) -> str:
        """The concept's key in the mastery model's parameters and learner states."""
        return str(self.pk)


# --- People: invitations and notices ------------------------------------------------------


class InvitationQuerySet(models.QuerySet):
    def usable(self, *, now) -> InvitationQuerySet:
        return self.filter(revoked_at__isnull=True, expires_at__gt=now)


class Invitation(models.Model):
    """A link that lets whoever holds it join one course in one role until it expires or
    a teacher revokes it (``learners.invitations``)."""

    course = models.ForeignKey(Course, on_delete=models.CASCADE, related_name="invitations")
    role = models.CharField(_("role"), max_length=10, choices=Membership.Role.choices)
    # The secret in the link; only its owner's course page shows it.
    token = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(_("expires"))
    revoked_at = models.DateTimeField(null=True, blank=True)
    uses = models.PositiveIntegerField(default=0)

    objects = InvitationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(role__in=["student", "teacher"]), name="invitation_role_known"
            ),
        ]
        verbose_name = _("invitation")
        verbose_name_plural = _("invitations")

    def __str__(self) -> str:
        return f"{self.course} — {self.get_role_display()} until {self.expires_at:%Y-%m-%d}"


class NoticeQuerySet(models.QuerySet):
    def unread(self) -> NoticeQuerySet:
        return self.filter(read_at__isnull=True)


class Notice(models.Model):
    """Something that happened for one person (a grade released, a regrade answered),
    shown in the app and, when they allow it, sent by email (``learners.notices``)."""

    class Kind(models.TextChoices):
        GRADE_RELEASED = "grade_released", _("Grade released")
        REGRADE_ANSWERED = "regrade_answered", _("Regrade answered")

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notices"
    )
    course = models.ForeignKey(Course, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    title = models.CharField(max_length=300)
    url = models.CharField(max_length=500)
    created_at = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True, blank=True)
    # When the email went out; empty while it is waiting or when the user wants none.
    emailed_at = models.DateTimeField(null=True, blank=True)

    objects = NoticeQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(
                fields=["user", "created_at"],
                condition=models.Q(read_at__isnull=True),
                name="notice_unread_by_user",
            )
        ]
        verbose_name = _("notice")
        verbose_name_plural = _("notices")

    def __str__(self) -> str:
        return self.title


class LoginThrottle(models.Model):
    """Failed sign-ins on one account from one kind of client, and the wait they impose.

    The client is an address (a browser without this account's device cookie), a device
    cookie (a browser that signed this account in before), or every browser without the
    cookie together. Failures on other accounts never count here. Administrators see the
    rows and lift a wait (learners/admin.py); the rules are in learners/throttle.py.
    """

    class Scope(models.TextChoices):
        ADDRESS = "address", _("One address, new browsers")
        DEVICE = "device", _("One browser that signed in before")
        ACCOUNT = "account", _("All new browsers together")

    username = models.CharField(_("username as typed"), max_length=150)
    scope = models.CharField(max_length=16, choices=Scope.choices)
    client = models.CharField(
        _("address or device"), max_length=64, blank=True, help_text=_("Empty for all.")
    )
    failures = models.PositiveIntegerField(default=0)
    last_failure_at = models.DateTimeField(db_index=True)
    blocked_until = models.DateTimeField(null=True, blank=True, db_index=True)
    lifted_at = models.DateTimeField(null=True, blank=True)
    lifted_by = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["-last_failure_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["username", "scope", "client"], name="one_login_throttle_per_client"
            )
        ]

    def __str__(self) -> str:
        return f"{self.username} ({self.get_scope_display()} {self.client})".strip()
