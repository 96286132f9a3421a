from django.urls import path, re_path

from requests_engine.api import views
from requests_engine.api.serializers import REFERENCE_PATTERN, action_url_name

ONE = rf"^requests/(?P<reference>{REFERENCE_PATTERN})/"

urlpatterns = [
    path("requests/", views.RequestListView.as_view(), name="api-requests"),
    re_path(ONE + "$", views.RequestDetailView.as_view(), name="api-request-detail"),
    re_path(
        ONE + r"identity-documents/(?P<document_id>\d+)/$",
        views.IdentityDocumentView.as_view(),
        name="api-identity-document",
    ),
    re_path(ONE + "acknowledge/$", views.AcknowledgeView.as_view(), name=action_url_name("acknowledge")),
    re_path(
        ONE + "request-information/$",
        views.RequestInformationView.as_view(),
        name=action_url_name("request-information"),
    ),
    re_path(ONE + "extend/$", views.ExtendView.as_view(), name=action_url_name("extend")),
    re_path(ONE + "fulfil/$", views.FulfilView.as_view(), name=action_url_name("fulfil")),
    re_path(
        ONE + "partially-fulfil/$",
        views.PartiallyFulfilView.as_view(),
        name=action_url_name("partially-fulfil"),
    ),
    re_path(ONE + "no-data-held/$", views.NoDataView.as_view(), name=action_url_name("no-data-held")),
    re_path(ONE + "refuse/$", views.RefuseView.as_view(), name=action_url_name("refuse")),
    # Anything else under /api/v1/ answers in JSON too.
    re_path(r"^", views.api_not_found),
]
