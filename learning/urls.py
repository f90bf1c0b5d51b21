"""Pages of the learner model (``learning:`` names)."""

from django.urls import path

from learning import api, views

app_name = "learning"

_COURSE = "courses/<int:course_id>/"
_API = "api/courses/<int:course_id>/"

urlpatterns = [
    path("profile/", views.profile, name="profile"),
    path(_COURSE + "concepts/", views.concepts_page, name="concepts"),
    path(_COURSE + "concepts/save/", views.concept_save, name="concept-save"),
    path(_COURSE + "concepts/delete/", views.concept_delete, name="concept-delete"),
    path(_COURSE + "concepts/suggest/", views.concepts_suggest, name="concepts-suggest"),
    path(_COURSE + "concepts/accept/", views.concepts_accept, name="concepts-accept"),
    path(_COURSE + "questions/", views.questions_page, name="questions"),
    path(_COURSE + "questions/generate/", views.questions_generate, name="questions-generate"),
    path(_COURSE + "questions/review/", views.question_review, name="question-review"),
    path(_COURSE + "questions/approve/", views.questions_approve, name="questions-approve"),
    path(_COURSE + "practice/", views.practice_page, name="practice"),
    path(_COURSE + "practice/answer/", views.practice_answer, name="practice-answer"),
    path(_COURSE + "progress/", views.progress_page, name="progress"),
    path(_COURSE + "progress/class/", views.progress_class_page, name="progress-class"),
    path(
        _COURSE + "progress/students/<int:student_id>/",
        views.progress_student_page,
        name="progress-student",
    ),
    path(_API + "mastery/", api.MyMasteryView.as_view(), name="api-mastery"),
    path(_API + "practice/next/", api.NextQuestionView.as_view(), name="api-practice-next"),
    path(_API + "practice/answers/", api.AnswerCreateView.as_view(), name="api-practice-answer"),
    path(_API + "reviews/due/", api.DueReviewsView.as_view(), name="api-reviews-due"),
    path(_API + "progress/class/", api.ClassProgressView.as_view(), name="api-progress-class"),
]
