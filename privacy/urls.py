from django.urls import path

from privacy import views

urlpatterns = [
    path("privacy/", views.privacy, name="privacy"),
    path("privacy/export/", views.privacy_export_download, name="privacy-export"),
    path("privacy/erase/", views.privacy_erase_account, name="privacy-erase"),
]
