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


class MasteryEvidence(models.Model):
    """One observed answer on a concept: the response log the mastery model learns from."""

    class Source(models.TextChoices):
        PRACTICE = "practice", _("Practice")
        REVIEW = "review", _("Spaced review")
        TUTOR = "tutor", _("Tutor check question")
        GRADING = "grading", _("Graded criterion")

    learner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="mastery_evidence"
    )
    concept = models.ForeignKey(Concept, on_delete=models.CASCADE, related_name="evidence")
    correct = models.BooleanField()
    source = models.CharField(max_length=20, choices=Source.choices)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["learner", "created_at"])]
        verbose_name = _("mastery evidence")
        verbose_name_plural = _("mastery evidence")

    def __str__(self) -> str:
        return f"{self.learner} {self.concept} {'✓' if self.correct else '✗'} ({self.source})"


class CourseMasteryModel(models.Model):
    """The mastery model's parameters fitted on one course's response log (JSON)."""

    course = models.OneToOneField(Course, on_delete=models.CASCADE, related_name="mastery_model")
    params = models.JSONField()
    responses = models.PositiveIntegerField(default=0)
    fitted_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.course}: {self.params.get('model')} on {self.responses} responses"


class LearnerCourseState(models.Model):
    """The mastery model's summary of one learner's evidence in one course (JSON)."""

    learner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="mastery_states"
    )
    course = models.ForeignKey(Course, on_delete=models.CASCADE, related_name="+")
    state = models.JSONField(default=dict)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["learner", "course"], name="one_state_per_course")
        ]

    def __str__(self) -> str:
        return f"{self.learner} in {self.course}"


class ConceptMastery(models.Model):
    """The current estimate per learner and concept, kept for pages and practice choice."""

    learner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="concept_mastery"
    )
    concept = models.ForeignKey(Concept, on_delete=models.CASCADE, related_name="mastery")
    probability = models.FloatField()
    attempts = models.PositiveIntegerField(default=0)
    enough_data = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["learner", "concept"], name="one_mastery_per_concept"),
            models.CheckConstraint(
                condition=models.Q(probability__gte=0) & models.Q(probability__lte=1),
                name="mastery_is_a_probability",
            ),
        ]
        verbose_name = _("concept mastery")
        verbose_name_plural = _("concept mastery")

    def __str__(self) -> str:
        return f"{self.learner} {self.concept} {self.probability:.2f}"


class PracticeQuestionQuerySet(models.QuerySet):
    def approved(self) -> PracticeQuestionQuerySet:
        return self.filter(status=PracticeQuestion.Status.APPROVED)


class PracticeQuestion(models.Model):
    # Not a column: why the teacher's edit was refused, shown beside it (question_review).
    review_errors: list[str]

    class Kind(models.TextChoices):
        CLOZE = "cloze", _("Fill in the blank")
        SHORT_ANSWER = "short_answer", _("Short answer")

    class Origin(models.TextChoices):
        MATERIAL = "material", _("Built from the material")
        LLM = "llm", _("Written by the language model")
        TEACHER = "teacher", _("Written by a teacher")

    class Status(models.TextChoices):
        PENDING = "pending", _("Waiting for review")
        APPROVED = "approved", _("Approved")
        REJECTED = "rejected", _("Rejected")

    concept = models.ForeignKey(Concept, on_delete=models.CASCADE, related_name="questions")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    prompt = models.TextField(_("question"), max_length=2000)
    # Cloze: every accepted answer (normalised on comparison). Short answer: key terms,
    # enough of which must appear in the answer.
    answers = models.JSONField(default=list)
    explanation = models.TextField(_("explanation"), blank=True, max_length=4000)
    source_text = models.TextField(blank=True, max_length=4000)
    origin = models.CharField(max_length=20, choices=Origin.choices)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    # Which model and prompt version wrote an LLM question, and its token usage.
    generation = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)

    objects = PracticeQuestionQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["concept", "prompt"], name="question_prompt_unique")
        ]
        verbose_name = _("practice question")
        verbose_name_plural = _("practice questions")

    def __str__(self) -> str:
        return self.prompt[:80]

    @property
    def answers_text(self) -> str:
        """The accepted answers (or key terms), one a line, as a teacher edits them."""
        return "\n".join(str(answer) for answer in self.answers or [])

    @property
    def names_its_answer(self) -> bool:
        """Whether showing the concept's name beside the question would give its answer
        away: a cloze whose blank is the concept (or part of its name)."""
        if self.kind != self.Kind.CLOZE:
            return False
        name = " ".join(self.concept.name.casefold().split())
        for answer in self.answers or []:
            answer = " ".join(str(answer).casefold().split())
            if answer and (answer in name or name in answer):
                return True
        return False


class QuestionGeneration(models.Model):
    """One request to the language model for practice questions on a concept: a tracked
    job like a tutor reply or a grade proposal. The row exists before its task is sent
    (on commit); the task claims it with a conditional update and holds a lease while it
    works, and the recovery sweep queues again one whose worker died or whose task was
    lost. The teacher sees its state on the concepts page, and why it failed."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Writing")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    concept = models.ForeignKey(Concept, on_delete=models.CASCADE, related_name="generations")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    # The teacher's pasted text; empty: the concept's material.
    text = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    questions_created = models.PositiveSmallIntegerField(default=0)
    # The call's usage record (ai.llm.LLMUsage.as_dict): the usage page counts it once.
    usage = models.JSONField(default=dict, blank=True)
    # "LLMUnsupported: <the server's words>" (ai.llm.llm_error_stored) or a worker's death.
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(
                fields=["lease_until"],
                name="generation_unfinished_lease",
                condition=models.Q(status__in=["queued", "running"]),
            )
        ]

    def __str__(self) -> str:
        return f"questions for {self.concept_id} ({self.status})"

    @property
    def failure_reason(self) -> str:
        """Why it failed, translated, for the concepts page."""
        from learners.practice import llm_failure_reason

        if self.status != self.Status.FAILED:
            return ""
        return llm_failure_reason(self.error) or str(_("The questions could not be written."))


class PracticeAttempt(models.Model):
    learner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="practice_attempts"
    )
    question = models.ForeignKey(
        PracticeQuestion, on_delete=models.CASCADE, related_name="attempts"
    )
    answer = models.TextField(max_length=2000)
    correct = models.BooleanField()
    is_review = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.learner} {'✓' if self.correct else '✗'} {self.question}"


class ReviewCardQuerySet(models.QuerySet):
    def due(self, *, now) -> ReviewCardQuerySet:
        return self.filter(due__lte=now)


class ReviewCard(models.Model):
    """A practised question's spaced-review schedule (an ``fsrs`` card, as JSON)."""

    learner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="review_cards"
    )
    question = models.ForeignKey(
        PracticeQuestion, on_delete=models.CASCADE, related_name="review_cards"
    )
    card = models.JSONField()
    due = models.DateTimeField(db_index=True)
    last_review = models.DateTimeField(null=True, blank=True)
    reviews = models.PositiveIntegerField(default=0)

    objects = ReviewCardQuerySet.as_manager()

    class Meta:
        ordering = ["due", "id"]
        constraints = [
            models.UniqueConstraint(fields=["learner", "question"], name="one_card_per_question")
        ]

    def __str__(self) -> str:
        return f"{self.learner} {self.question} due {self.due:%Y-%m-%d}"


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
