from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.decorators.http import require_http_methods
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView

from ai.usage_views import course_usage
from config.health import healthz
from config.metrics import metrics_view
from learners.accounts import PasswordResetByEmailForm
from learners.views import ThrottledLoginView

# Django's form views answer PUT like POST; ours take GET and POST only.
_get_post = require_http_methods(["GET", "POST"])

# Django's own password views in our layout (templates/registration/). A first sign-in
# is a password reset with its own wording: the account never had a password.
_password_views = [
    path(
        "password-reset/",
        _get_post(auth_views.PasswordResetView.as_view(form_class=PasswordResetByEmailForm)),
        name="password_reset",
    ),
    path(
        "password-reset/sent/",
        auth_views.PasswordResetDoneView.as_view(),
        name="password_reset_done",
    ),
    path(
        "password-reset/<uidb64>/<token>/",
        _get_post(auth_views.PasswordResetConfirmView.as_view()),
        name="password_reset_confirm",
    ),
    path(
        "password-reset/done/",
        auth_views.PasswordResetCompleteView.as_view(),
        name="password_reset_complete",
    ),
    path(
        "first-sign-in/<uidb64>/<token>/",
        _get_post(
            auth_views.PasswordResetConfirmView.as_view(
                template_name="registration/first_sign_in_confirm.html"
            )
        ),
        name="first-sign-in",
    ),
]

urlpatterns = [
    path("", include("learners.urls")),
    path("", include("learning.urls")),
    # Each app declares its full paths (pages under courses/<id>/..., API under api/...).
    path("", include("material.urls")),
    path("", include("tutor.conversation_urls")),
    path("", include("grading.urls")),
    path("", include("lti.urls")),
    path("", include("learners.people_urls")),
    path("", include("privacy.urls")),
    *_password_views,
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics_view, name="metrics"),
    path("staff/usage/courses/<int:course_id>/", course_usage, name="course-usage"),
    path("login/", ThrottledLoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    # The admin's own login form is not throttled: staff sign in through ours.
    path(
        "admin/login/",
        RedirectView.as_view(pattern_name="login", query_string=True, permanent=False),
    ),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("i18n/", include("django.conf.urls.i18n")),
]

handler400 = "config.errors.bad_request"
handler404 = "config.errors.page_not_found"
handler500 = "config.errors.server_error"
