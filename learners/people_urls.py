"""Pages of people (``people:`` names): roster, enrolment, invitations, staff home."""

from django.urls import path

from learners import people_views as views

app_name = "people"

_C = "courses/<int:course_id>/people/"

urlpatterns = [
    path(_C, views.roster, name="roster"),
    path(_C + "enrol/", views.enrol, name="enrol"),
    path(_C + "<int:membership_id>/remove/", views.member_remove, name="remove"),
    path(_C + "invitations/", views.invitation_new, name="invitation-new"),
    path(
        _C + "invitations/<int:invitation_id>/revoke/",
        views.invitation_revoke_view,
        name="invitation-revoke",
    ),
    path("join/<str:token>/", views.join, name="join"),
    path("staff/", views.staff_home, name="staff-home"),
]
