"""LTI 1.3: the platforms (LMSs) that may launch us, our signing keys, and what a launch
links to on our side (a person, a course, a resource, a gradebook column).

Only this app knows about LTI: learners, tutor and grading never import it. A person who
arrives from an LMS is an ordinary ``User`` (no usable password) with an ``LtiIdentity``
per platform; an LMS course is an ordinary ``Course`` with an ``LtiContext``.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from config.jobs import Job


def url_origin(url: str) -> str:
    """``https://host[:port]`` of a URL ("" when it has none)."""
    parts = urlsplit(url or "")
    if not parts.scheme or not parts.netloc:
        return ""
    return f"{parts.scheme}://{parts.netloc}"


class LtiPlatformQuerySet(models.QuerySet):
    def active(self) -> LtiPlatformQuerySet:
        return self.filter(is_active=True)


class LtiPlatform(models.Model):
    """One registration of this tool in one LMS (an issuer and the client id it gave us)."""

    name = models.CharField(_("name"), max_length=200, blank=True)
    issuer = models.CharField(_("issuer"), max_length=255)
    client_id = models.CharField(_("client ID"), max_length=255)
    auth_login_url = models.URLField(_("authentication (OIDC) login URL"), max_length=500)
    auth_token_url = models.URLField(_("access token URL"), max_length=500)
    auth_audience = models.CharField(
        _("access token audience"),
        max_length=500,
        blank=True,
        help_text=_("Only when the platform asks for one (empty: the access token URL)."),
    )
    keyset_url = models.URLField(_("public keyset (JWKS) URL"), max_length=500)
    frame_origins = models.TextField(
        _("frame origins"),
        blank=True,
        help_text=_(
            "Origins (https://school.example.edu) whose pages may show the tutor in an "
            "iframe, separated by spaces. The issuer's and login URL's origins are always "
            "allowed."
        ),
    )
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = LtiPlatformQuerySet.as_manager()

    class Meta:
        verbose_name = _("LTI platform")
        verbose_name_plural = _("LTI platforms")
        constraints = [
            models.UniqueConstraint(
                fields=["issuer", "client_id"], name="lti_one_client_per_issuer"
            )
        ]

    def __str__(self) -> str:
        return self.name or f"{self.issuer} ({self.client_id})"

    def allowed_frame_origins(self) -> list[str]:
        origins = [url_origin(self.issuer), url_origin(self.auth_login_url)]
        origins += [url_origin(value) for value in self.frame_origins.split()]
        return sorted({origin for origin in origins if origin})


class LtiDeployment(models.Model):
    """A deployment id the platform gave when it installed the tool (per account or course)."""

    platform = models.ForeignKey(LtiPlatform, on_delete=models.CASCADE, related_name="deployments")
    deployment_id = models.CharField(_("deployment ID"), max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("LTI deployment")
        verbose_name_plural = _("LTI deployments")
        constraints = [
            models.UniqueConstraint(
                fields=["platform", "deployment_id"], name="lti_one_deployment_id_per_platform"
            )
        ]

    def __str__(self) -> str:
        return self.deployment_id


class ToolKey(models.Model):
    """An RSA key pair the tool signs with (deep-linking responses, service access
    requests). The newest unretired key signs; retired keys stay in the JWKS for
    ``LTI_KEY_OVERLAP_SECONDS`` so platforms holding a cached keyset keep verifying."""

    kid = models.CharField(_("key ID"), max_length=100, unique=True)
    public_pem = models.TextField(_("public key"))
    private_pem = models.TextField(_("private key"))
    created_at = models.DateTimeField(auto_now_add=True)
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("tool signing key")
        verbose_name_plural = _("tool signing keys")
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return self.kid


class LtiIdentity(models.Model):
    """Who a person is on one platform (the ``sub`` claim): personal data."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="lti_identities"
    )
    platform = models.ForeignKey(LtiPlatform, on_delete=models.CASCADE, related_name="identities")
    sub = models.CharField(_("platform user ID"), max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)
    last_launch_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("LTI identity")
        verbose_name_plural = _("LTI identities")
        constraints = [
            models.UniqueConstraint(fields=["platform", "sub"], name="lti_one_user_per_sub")
        ]

    def __str__(self) -> str:
        return f"{self.platform} · {self.sub}"


class LtiContext(models.Model):
    """An LMS course (context) and the course it became here, with its service URLs."""

    platform = models.ForeignKey(LtiPlatform, on_delete=models.CASCADE, related_name="contexts")
    deployment = models.ForeignKey(
        LtiDeployment, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    context_id = models.CharField(_("context ID"), max_length=255)
    course = models.ForeignKey(
        "learners.Course", on_delete=models.CASCADE, related_name="lti_contexts"
    )
    title = models.CharField(_("title"), max_length=255, blank=True)
    memberships_url = models.URLField(_("roster (NRPS) URL"), max_length=500, blank=True)
    lineitems_url = models.URLField(_("line items (AGS) URL"), max_length=500, blank=True)
    ags_scopes = models.JSONField(default=list, blank=True)
    roster_synced_at = models.DateTimeField(null=True, blank=True)
    roster_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("LTI context")
        verbose_name_plural = _("LTI contexts")
        constraints = [
            models.UniqueConstraint(
                fields=["platform", "context_id"], name="lti_one_course_per_context"
            )
        ]

    def __str__(self) -> str:
        return f"{self.title or self.context_id} → {self.course}"


class LtiLineItem(models.Model):
    """The platform's gradebook column for one assignment in one context."""

    context = models.ForeignKey(LtiContext, on_delete=models.CASCADE, related_name="line_items")
    assignment = models.ForeignKey(
        "grading.Assignment", on_delete=models.CASCADE, related_name="lti_line_items"
    )
    url = models.URLField(max_length=500)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["context", "assignment"], name="lti_one_line_item_per_assignment"
            )
        ]

    def __str__(self) -> str:
        return self.url


class LtiScorePost(Job):
    """A released grade on its way to the platform's gradebook: a tracked job
    (``config/jobs.py``).

    One row per submission and context; a grade released again (changed) resets it to
    queued with the new score. The worker claims it with a lease, a failed attempt goes
    back to the queue with a growing delay, and after ``LTI_SCORE_MAX_ATTEMPTS`` (worker
    deaths included) it stays ``failed`` with the reason until a teacher retries.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", _("Waiting to be sent")
        SENDING = "sending", _("Sending")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed")

    QUEUED, RUNNING, FAILED = Status.QUEUED, Status.SENDING, Status.FAILED
    LOST_ERROR = "WorkerLost: the worker sending this grade stopped too many times"

    submission = models.ForeignKey(
        "grading.Submission", on_delete=models.CASCADE, related_name="lti_score_posts"
    )
    context = models.ForeignKey(LtiContext, on_delete=models.CASCADE, related_name="score_posts")
    score_given = models.DecimalField(max_digits=8, decimal_places=2)
    score_maximum = models.DecimalField(max_digits=8, decimal_places=2)
    comment = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("grade sent to an LMS")
        verbose_name_plural = _("grades sent to an LMS")
        constraints = [
            models.UniqueConstraint(
                fields=["submission", "context"], name="lti_one_score_post_per_submission"
            )
        ]
        indexes = [models.Index(fields=["status", "lease_until"], name="lti_scorepost_due")]

    def __str__(self) -> str:
        return f"{self.submission_id} → {self.context} ({self.status})"

    @classmethod
    def max_attempts(cls) -> int:
        # Every try counts, the LMS's refusals as well as the deaths of workers.
        return settings.LTI_SCORE_MAX_ATTEMPTS


class LtiRegistrationLink(models.Model):
    """A one-time link an admin made (``manage.py lti_registration_link``) and pastes into
    the LMS as the Dynamic Registration URL. Only its SHA-256 is kept; it stops working
    once a registration succeeded through it or when it expires. A failed attempt leaves
    it usable, so the admin can try again after fixing the cause."""

    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    issuer = models.CharField(
        _("expected issuer"),
        max_length=255,
        blank=True,
        help_text=_(
            "When set, the LMS must present exactly this issuer (Canvas: "
            "https://canvas.instructure.com, which is not on the host of its configuration "
            "URL); when empty, the issuer must be on the configuration URL's host."
        ),
    )
    platform = models.ForeignKey(
        LtiPlatform, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        verbose_name = _("LTI registration link")
        verbose_name_plural = _("LTI registration links")

    def __str__(self) -> str:
        return f"registration link {self.pk} ({'used' if self.used_at else 'open'})"
