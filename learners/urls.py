from django.urls import path

from learners import privacy_views, views

urlpatterns = [
    path("", views.home, name="home"),
    path("courses/<int:course_id>/", views.course_detail, name="course-detail"),
    path("consent/", views.consent, name="consent"),
    path("privacy/", privacy_views.privacy, name="privacy"),
    path("privacy/export/", privacy_views.privacy_export_download, name="privacy-export"),
    path("privacy/erase/", privacy_views.privacy_erase_account, name="privacy-erase"),
]
