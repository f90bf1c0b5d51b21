from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from learners.audit import audit_record
from learners.models import AIConsent, AuditEvent, Course, LoginThrottle, Membership, User
from learners.throttle import login_throttle_lift


def _audit_role_change(request, membership: Membership, *, before: str | None, after: str | None):
    if before != after:
        audit_record(
            action=AuditEvent.Action.ROLE_CHANGED,
            actor=request.user,
            target=membership.user,
            before={"role": before} if before else None,
            after={"role": after} if after else None,
            course_id=membership.course_id,
            reason="changed in administration",
        )


def _stored_role(membership: Membership) -> str | None:
    if membership.pk is None:
        return None
    return Membership.objects.filter(pk=membership.pk).values_list("role", flat=True).first()


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1
    autocomplete_fields = ["user"]


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows the admin shows but never adds, edits or deletes (actions may still act)."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    fieldsets = (
        *(DjangoUserAdmin.fieldsets or ()),
        (_("Profile"), {"fields": ("display_name", "preferred_language")}),
    )
    list_display = ("username", "email", "display_name", "is_staff", "is_active")

    def has_delete_permission(self, request, obj=None):
        # Django's delete (the "Delete selected" action, the delete button) would take a
        # student's submissions and released grades with it and leave no audit event;
        # people leave through erasure (privacy/admin.py adds it), audited, grades kept.
        return False


@admin.register(Course)
class CourseAdmin(admin.ModelAdmin):
    list_display = ("title", "slug", "created_at", "usage_link")
    search_fields = ("title", "slug")
    prepopulated_fields = {"slug": ("title",)}
    inlines = [MembershipInline]

    @admin.display(description=_("LLM usage"))
    def usage_link(self, obj: Course) -> str:
        return format_html(
            '<a href="{}">{}</a>', reverse("course-usage", args=[obj.pk]), _("Usage and cost")
        )

    def save_formset(self, request, form, formset, change):
        if formset.model is not Membership:
            return super().save_formset(request, form, formset, change)
        before = {m.pk: _stored_role(m) for m in formset.queryset}
        instances = formset.save(commit=False)
        for membership in formset.deleted_objects:
            _audit_role_change(request, membership, before=before.get(membership.pk), after=None)
            membership.delete()
        for membership in instances:
            old = before.get(membership.pk)
            membership.save()
            _audit_role_change(request, membership, before=old, after=membership.role)
        formset.save_m2m()


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("user", "course", "role", "joined_at")
    list_filter = ("role", "course")
    search_fields = ("user__username", "course__title")
    list_select_related = ("user", "course")
    autocomplete_fields = ["user", "course"]

    def save_model(self, request, obj, form, change):
        before = _stored_role(obj)
        super().save_model(request, obj, form, change)
        _audit_role_change(request, obj, before=before, after=obj.role)

    def delete_model(self, request, obj):
        _audit_role_change(request, obj, before=_stored_role(obj), after=None)
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for membership in queryset:
            self.delete_model(request, membership)


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    """Read-only: the database refuses changes anyway; the admin only filters and reads."""

    list_display = ("created_at", "action", "actor_label", "target_type", "target_id", "course_id")
    list_filter = ("action", "created_at")
    search_fields = ("actor_label", "target_id", "reason")
    date_hierarchy = "created_at"


@admin.register(AIConsent)
class AIConsentAdmin(admin.ModelAdmin):
    """Where a school records a guardian's or its own consent for a young learner."""

    list_display = ("user", "granted", "given_by", "version", "recorded_at", "recorded_by")
    list_filter = ("granted", "given_by", "version")
    search_fields = ("user__username",)
    autocomplete_fields = ["user"]
    exclude = ("recorded_by",)

    def save_model(self, request, obj, form, change):
        if not change:
            obj.recorded_by = request.user
        super().save_model(request, obj, form, change)

    def has_change_permission(self, request, obj=None):
        return False  # a new decision is a new row; history is never rewritten


class LoginWaitingFilter(admin.SimpleListFilter):
    title = _("waiting now")
    parameter_name = "waiting"

    def lookups(self, request, model_admin):
        return [("yes", _("Yes")), ("no", _("No"))]

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == "yes":
            return queryset.filter(blocked_until__gt=now)
        if self.value() == "no":
            return queryset.exclude(blocked_until__gt=now)
        return queryset


@admin.register(LoginThrottle)
class LoginThrottleAdmin(ReadOnlyAdmin):
    """Failed sign-ins and the waits they impose (learners/throttle.py); an administrator
    lifts a wait, for instance for a teacher whose account someone is guessing at."""

    list_display = (
        "username",
        "scope",
        "client",
        "failures",
        "last_failure_at",
        "blocked_until",
        "waiting",
        "lifted_at",
        "lifted_by",
    )
    list_filter = (LoginWaitingFilter, "scope")
    search_fields = ("username", "client")
    actions = ["lift"]

    @admin.display(boolean=True, description=_("waiting now"))
    def waiting(self, obj: LoginThrottle) -> bool:
        return bool(obj.blocked_until and obj.blocked_until > timezone.now())

    @admin.action(description=_("Lift the selected waits (the counts start again)"))
    def lift(self, request, queryset):
        lifted = login_throttle_lift(queryset, actor=request.user)
        self.message_user(request, _("%(count)d lifted.") % {"count": lifted}, messages.SUCCESS)
