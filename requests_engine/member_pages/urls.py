"""A member's request pages, under /me/ beside their account and mandate pages (communities.urls)."""

from django.urls import path

from requests_engine.member_pages import views

urlpatterns = [
    path("me/requests/<str:reference>/", views.request_detail, name="request-detail"),
    path("me/requests/<str:reference>/forward/", views.request_forward, name="request-forward"),
    path("me/requests/<str:reference>/ico-kit/", views.complaint_kit, name="request-complaint-kit"),
    path("me/confirm/<str:token>/", views.confirmation, name="confirmation"),
    path("me/files/<int:file_id>/", views.received_file, name="received-file"),
    path("me/files/<int:file_id>/keep/", views.received_file_keep, name="received-file-keep"),
]
