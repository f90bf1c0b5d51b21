from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _

from lti.embedding import forget_frame_origins
from lti.models import (
    LtiContext,
    LtiDeployment,
    LtiPlatform,
    LtiRegistrationLink,
    LtiScorePost,
    ToolKey,
)


class DeploymentInline(admin.TabularInline):
    model = LtiDeployment
    extra = 1


@admin.register(LtiPlatform)
class LtiPlatformAdmin(admin.ModelAdmin):
    list_display = ("__str__", "issuer", "client_id", "is_active", "created_at")
    list_filter = ("is_active",)
    search_fields = ("name", "issuer", "client_id")
    inlines = [DeploymentInline]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        forget_frame_origins()

    def get_readonly_fields(self, request, obj=None):
        return ("tool_urls",)

    @admin.display(description=_("URLs to copy into the LMS"))
    def tool_urls(self, obj):
        from lti.views import tool_urls

        urls = tool_urls()
        return "; ".join(f"{name}: {url}" for name, url in urls.items())


@admin.register(ToolKey)
class ToolKeyAdmin(admin.ModelAdmin):
    list_display = ("kid", "created_at", "retired_at")
    fields = ("kid", "public_pem", "created_at", "retired_at")
    readonly_fields = fields
    actions = ["rotate"]

    def has_add_permission(self, request):
        return False

    @admin.action(description=_("Rotate: a new key signs from now on"))
    def rotate(self, request, queryset):
        from lti.keys import rotate_key  # the JOSE library loads only when keys turn

        key = rotate_key()
        self.message_user(
            request, _("New signing key %(kid)s.") % {"kid": key.kid}, messages.SUCCESS
        )


@admin.register(LtiContext)
class LtiContextAdmin(admin.ModelAdmin):
    list_display = ("__str__", "platform", "roster_synced_at")
    raw_id_fields = ("course",)
    readonly_fields = ("roster_synced_at", "roster_error")


@admin.register(LtiScorePost)
class LtiScorePostAdmin(admin.ModelAdmin):
    list_display = (
        "submission",
        "context",
        "score_given",
        "score_maximum",
        "status",
        "attempts",
        "updated_at",
    )
    list_filter = ("status",)
    readonly_fields = [f.name for f in LtiScorePost._meta.fields]


@admin.register(LtiRegistrationLink)
class LtiRegistrationLinkAdmin(admin.ModelAdmin):
    """Links made by ``manage.py lti_registration_link``: see which are open and delete
    one to revoke it (the token itself is never stored)."""

    list_display = ("pk", "created_at", "expires_at", "used_at", "issuer", "platform")
    fields = ("created_at", "expires_at", "used_at", "issuer", "platform")
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
