"""Pages and API of course material, under each course (``tutor:`` names)."""

from django.urls import path

from material import api, library_views, views

# The namespace these pages had when they were the tutor app's: every link, template and
# bookmark names them ``tutor:materials``, ``tutor:search`` and so on, and names stay.
app_name = "tutor"

_C = "courses/<int:course_id>/"
_M = _C + "materials/<int:material_id>/"
_API = "api/" + _C

urlpatterns = [
    path(_C + "materials/", views.materials_page, name="materials"),
    path(_C + "materials/upload/", views.material_upload_view, name="material-upload"),
    path(_C + "library/", library_views.library, name="library"),
    path(_M, library_views.material_detail, name="material-detail"),
    path(_M + "delete/", views.material_delete_view, name="material-delete"),
    path(_M + "reingest/", views.material_reingest_view, name="material-reingest"),
    path(_M + "rename/", views.material_rename_view, name="material-rename"),
    path(_C + "search/", views.search_page, name="search"),
    path(_API + "search", api.CourseSearchView.as_view(), name="api-search"),
    path(_API + "materials", api.MaterialListView.as_view(), name="api-materials"),
    path(
        _API + "materials/<int:material_id>", api.MaterialDetailView.as_view(), name="api-material"
    ),
]
