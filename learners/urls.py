from django.urls import path

from learners import views

urlpatterns = [
    path("", views.home, name="home"),
    path("courses/<int:course_id>/", views.course_detail, name="course-detail"),
    path("consent/", views.consent, name="consent"),
]
