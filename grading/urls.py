"""Pages and API of essay grading, under each course (``grading:`` names)."""

from django.urls import path

from grading import api, views

app_name = "grading"

_A = "courses/<int:course_id>/assignments/<int:assignment_id>/"
_ESSAY = _A + "review/<int:submission_id>/"
_API = "api/" + _A

urlpatterns = [
    path("courses/<int:course_id>/assignments/", views.assignment_list, name="assignments"),
    path("courses/<int:course_id>/assignments/new/", views.assignment_new, name="assignment-new"),
    path(_A, views.assignment_detail, name="assignment"),
    path(_A + "rubric.json", views.rubric_export_view, name="rubric-export"),
    path(_A + "submit/", views.submission_create, name="submit"),
    path(_A + "regrade/", views.regrade_create, name="regrade"),
    path(_A + "review/", views.review_queue_view, name="review"),
    path(_A + "review/bulk-approve/", views.bulk_approve_view, name="bulk-approve"),
    path(_A + "review/release/", views.release_all_view, name="release-all"),
    path(_ESSAY, views.review_essay, name="review-essay"),
    path(
        _ESSAY + "criteria/<int:criterion_id>/",
        views.criterion_decide,
        name="criterion-decide",
    ),
    path(_ESSAY + "save/", views.review_essay_save, name="review-save"),
    path(_ESSAY + "release/", views.release_view, name="release"),
    path(_ESSAY + "retry/", views.proposal_retry_view, name="retry"),
    path(_ESSAY + "feedback/", views.feedback_edit, name="feedback"),
    path(_A + "agreement/", views.agreement_view, name="agreement"),
    path(_API + "review-queue/", api.ReviewQueueView.as_view(), name="api-review-queue"),
    path(_API + "submissions/", api.SubmissionCreateView.as_view(), name="api-submit"),
    path(_API + "grade/", api.MyGradeView.as_view(), name="api-grade"),
    path(
        _API + "submissions/<int:submission_id>/criteria/<int:criterion_id>/",
        api.CriterionDecisionView.as_view(),
        name="api-criterion-decide",
    ),
    path(_API + "agreement/", api.AgreementView.as_view(), name="api-agreement"),
]
