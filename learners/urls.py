from django.urls import path

from learners import notice_views, views

urlpatterns = [
    path("", views.home, name="home"),
    path("courses/<int:course_id>/", views.course_detail, name="course-detail"),
    path("consent/", views.consent, name="consent"),
    path("notices/", notice_views.notices_page, name="notices"),
    path("notices/<int:notice_id>/", notice_views.notice_open, name="notice-open"),
    path("notices/read/", notice_views.notices_read_all, name="notices-read-all"),
]
