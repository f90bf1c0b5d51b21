"""The tool's LTI endpoints (``lti:`` names); the three an LMS needs are login, launch
and jwks; ``register`` is the Dynamic Registration URL (a one-time link)."""

from django.urls import path

from lti import registration_views, teacher_views, views

app_name = "lti"

urlpatterns = [
    path("lti/login/", views.login_initiation, name="login"),
    path("lti/launch/", views.launch, name="launch"),
    path("lti/jwks/", views.jwks, name="jwks"),
    path("lti/landing/", views.landing, name="landing"),
    path("lti/resume/", views.resume, name="resume"),
    path("lti/deep-link/", views.deep_link, name="deep-link"),
    path("lti/register/<token>/", registration_views.register_view, name="register"),
    path("courses/<int:course_id>/lms/", teacher_views.course_lms, name="course-lms"),
    path(
        "courses/<int:course_id>/lms/grades/<int:post_id>/retry/",
        teacher_views.score_post_retry_view,
        name="score-post-retry",
    ),
]
