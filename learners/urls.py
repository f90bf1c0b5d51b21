from django.urls import path

from learners import notice_views, privacy_views, views

urlpatterns = [
    path("", views.home, name="home"),
    path("courses/<int:course_id>/", views.course_detail, name="course-detail"),
    path("consent/", views.consent, name="consent"),
    path("privacy/", privacy_views.privacy, name="privacy"),
    path("privacy/export/", privacy_views.privacy_export_download, name="privacy-export"),
    path("notices/", notice_views.notices_page, name="notices"),
    path("notices/<int:notice_id>/", notice_views.notice_open, name="notice-open"),
    path("notices/read/", notice_views.notices_read_all, name="notices-read-all"),
    path("privacy/erase/", privacy_views.privacy_erase_account, name="privacy-erase"),
]
