from django.urls import path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("join/<slug:slug>/", views.join, name="join"),
    path("me/", views.me, name="me"),
    path("me/export/", views.account_export, name="account-export"),
    path("me/delete/", views.account_delete, name="account-delete"),
    path("me/<str:reference>/name/", views.name_correct, name="member-name"),
    path("me/<str:reference>/identifiers/", views.identifiers, name="member-identifiers"),
    path("identifiers/check/<str:token>/", views.identifier_check, name="identifier-check"),
    path("me/<str:reference>/notifications/", views.notification_settings, name="member-notifications"),
    path("me/<str:reference>/mandate/new/", views.mandate_new, name="mandate-new"),
    path("me/<str:reference>/mandate/review/", views.mandate_review, name="mandate-review"),
    path("me/mandates/<str:reference>/", views.mandate_detail, name="mandate-detail"),
    path("me/mandates/<str:reference>/pdf/", views.mandate_pdf, name="mandate-pdf"),
    path("me/mandates/<str:reference>/revoke/", views.mandate_revoke, name="mandate-revoke"),
    path("verify/", views.mandate_check, name="mandate-check"),
    path("verify/<str:token>/", views.mandate_verify, name="mandate-verify"),
    path("privacy/", views.privacy, name="privacy"),
]
