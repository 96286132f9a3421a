from django.urls import path

from requests_engine.portal import views

urlpatterns = [
    path("", views.home, name="portal-home"),
    path("sign-in/<str:token>/", views.sign_in, name="portal-sign-in"),
    path("sign-out/", views.sign_out, name="portal-sign-out"),
    path("requests/", views.request_list, name="portal-requests"),
    path("requests/bulk/", views.bulk, name="portal-bulk"),
    path("requests/csv/", views.csv_upload, name="portal-csv"),
    path("requests/<str:reference>/", views.request_detail, name="portal-request"),
    path("requests/<str:reference>/authority.pdf", views.authority_pdf, name="portal-authority-pdf"),
    path(
        "requests/<str:reference>/identity/<int:document_id>/",
        views.identity_document,
        name="portal-identity-document",
    ),
    path("requests/<str:reference>/<slug:action>/", views.act, name="portal-act"),
]
