"""Admin of course material: upload (queued for ingestion like any upload), status,
processing again, and a read-only view of the chunks."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _

from learners.models import Concept
from material.models import Chunk, Material
from material.services import material_reingest, material_upload


class MaterialAddForm(forms.ModelForm):
    class Meta:
        model = Material
        fields = ["course", "title", "file"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["file"].required = True
        self.fields["title"].required = False
        self.fields["title"].help_text = _("Leave empty to use the document's own title.")


@admin.register(Material)
class MaterialAdmin(admin.ModelAdmin):
    list_display = ["title", "course", "status", "progress", "kind", "created"]
    list_filter = ["status", "kind"]
    search_fields = ["title", "original_name", "course__title"]
    list_select_related = ["course"]
    actions = ["process_again"]
    readonly_fields = [
        "original_name",
        "file",
        "size",
        "kind",
        "status",
        "progress",
        "failure_reason",
        "file_hash",
        "text_hash",
        "uploaded_by",
        "created",
        "updated",
        "claimed_at",
        "ingested_at",
    ]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = MaterialAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else []

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["course", "title", "file"]
        return ["course", "title", *self.readonly_fields]

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        material = material_upload(
            course=form.cleaned_data["course"],
            file=form.cleaned_data["file"],
            uploaded_by=request.user,
            title=form.cleaned_data.get("title") or "",
        )
        # The admin goes on with ``obj`` (its log entry, its redirect): make it that row.
        obj.pk = material.pk
        obj.refresh_from_db()

    @admin.action(description=_("Process the selected material again"))
    def process_again(self, request, queryset):
        for material in queryset:
            material_reingest(material=material)
        messages.success(request, _("Queued for processing."))


@admin.register(Chunk)
class ChunkAdmin(admin.ModelAdmin):
    """Passages are written by ingestion; only the concepts they teach are edited here."""

    list_display = ["__str__", "material", "section", "page", "word_count"]
    list_select_related = ["material"]
    list_filter = [("concepts", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["text", "section", "material__title"]
    fields = [
        "material",
        "course",
        "position",
        "section",
        "page",
        "word_count",
        "text",
        "concepts",
    ]
    readonly_fields = [f for f in fields if isinstance(f, str) and f != "concepts"]
    filter_horizontal = ["concepts"]

    def has_add_permission(self, request):
        return False

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.name == "concepts":
            chunk_id = request.resolver_match.kwargs.get("object_id")
            course_id = Chunk.objects.filter(pk=chunk_id).values("course_id")
            kwargs["queryset"] = Concept.objects.filter(course_id__in=course_id)
        return super().formfield_for_manytomany(db_field, request, **kwargs)
