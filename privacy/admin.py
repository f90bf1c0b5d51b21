"""The user admin with the privacy actions: export one person's data, erase people."""

from __future__ import annotations

from django.contrib import admin, messages
from django.template.response import TemplateResponse
from django.utils.translation import gettext_lazy as _

from learners.admin import UserAdmin
from learners.models import User
from privacy.personal_data import ErasureUnavailable, privacy_erase, privacy_export
from privacy.views import privacy_export_response

# learners registers the user admin; the privacy app (above it) adds its actions.
admin.site.unregister(User)


@admin.register(User)
class PrivacyUserAdmin(UserAdmin):
    actions = ["export_personal_data", "erase_personal_data"]

    @admin.action(description=_("Export the selected user's personal data (zip)"))
    def export_personal_data(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, _("Select exactly one user to export."), messages.ERROR)
            return None
        data = privacy_export(user=queryset.get(), actor=request.user)
        return privacy_export_response(data=data)

    @admin.action(description=_("Erase the selected users and their personal data"))
    def erase_personal_data(self, request, queryset):
        # Staff accounts are erased by a superuser through the shell, never by a colleague's
        # click; a confirmation page stands between the action and the erasure.
        targets = list(queryset.filter(is_staff=False, is_superuser=False))
        if len(targets) != queryset.count():
            self.message_user(request, _("Staff accounts cannot be erased here."), messages.ERROR)
            return None
        if request.POST.get("confirm") != "erase":
            return TemplateResponse(
                request,
                "admin/learners/user/privacy_erase_confirm.html",
                {
                    **self.admin_site.each_context(request),
                    "title": _("Erase users and their data"),
                    "targets": targets,
                    "action": "erase_personal_data",
                    "opts": self.model._meta,
                },
            )
        try:
            for user in targets:
                privacy_erase(user=user, actor=request.user)
        except ErasureUnavailable as error:
            self.message_user(request, str(error), messages.ERROR)
            return None
        self.message_user(request, _("Erased %(n)d users.") % {"n": len(targets)})
        return None
