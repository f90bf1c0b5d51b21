from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView

from config.health import healthz
from config.metrics import metrics_view
from config.usage_views import course_usage
from learners.views import ThrottledLoginView

urlpatterns = [
    path("", include("learners.urls")),
    path("", include("learners.learning_urls")),
    # Each app declares its full paths (pages under courses/<id>/..., API under api/...).
    path("", include("tutor.urls")),
    path("", include("tutor.conversation_urls")),
    path("", include("grading.urls")),
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
