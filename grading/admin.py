from django.contrib import admin

from grading.models import Assignment, CriterionScore, RubricCriterion, Submission


class RubricCriterionInline(admin.TabularInline):
    model = RubricCriterion
    extra = 1
    fields = ["position", "name", "min_score", "max_score", "step", "level_descriptors", "concept"]


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ["title", "course", "due_at", "resubmission_policy"]
    list_filter = ["resubmission_policy"]
    list_select_related = ["course"]
    search_fields = ["title", "course__title"]
    autocomplete_fields = ["course"]
    inlines = [RubricCriterionInline]


class CriterionScoreInline(admin.TabularInline):
    """Read-only: grades change through the review workflow, which audits every change."""

    model = CriterionScore
    extra = 0
    fields = readonly_fields = ("criterion", "score", "scored_by", "scored_at")
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Submission)
class SubmissionAdmin(admin.ModelAdmin):
    list_display = ["assignment", "learner", "submitted_at", "is_current"]
    list_filter = ["is_current"]
    list_select_related = ["assignment", "learner"]
    search_fields = ["assignment__title", "learner__username"]
    readonly_fields = ["assignment", "learner", "text", "submitted_at", "is_current"]
    inlines = [CriterionScoreInline]

    def has_add_permission(self, request) -> bool:
        return False
