from csp.decorators import csp_update
from django.contrib import admin
from django.shortcuts import redirect
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from communities import account_views
from core.views import healthz
from requests_engine.register import views as register_views

admin.site.site_header = "Data community back office"
admin.site.site_title = "Data community"


def admin_login(request, extra_context=None):
    """The back office signs in through the same accounts (allauth: rate limits, verified email, 2FA)."""
    return redirect(f"/accounts/login/?next={request.GET.get('next', '/admin/')}")


admin.site.login = admin_login  # type: ignore[method-assign]  # one sign-in for the whole site

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    # Before allauth's own: a used or expired confirmation link says so and offers the way forward.
    path(
        "accounts/confirm-email/<str:key>/",
        account_views.ConfirmEmailView.as_view(),
        name="account_confirm_email",
    ),
    path(
        "accounts/confirm-email/<str:key>/new-link/",
        account_views.confirmation_new_link,
        name="account_confirm_email_new_link",
    ),
    path("accounts/", include("allauth.urls")),
    path("respond/", include("requests_engine.portal.urls")),
    path("register/", include("requests_engine.register.urls")),
    path("api/v1/register/", register_views.register_json, name="api-register"),
    path(
        "api/v1/register/controllers/<slug:slug>/",
        register_views.controller_json,
        name="api-register-controller",
    ),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's start-up script as a file, so the page needs no inline script.
    path(
        "api/docs/",
        csp_update({"style-src": ["'unsafe-inline'"]})(
            SpectacularSwaggerSplitView.as_view(url_name="api-schema")
        ),
        name="api-docs",
    ),
    path("api/v1/", include("requests_engine.api.urls")),
    path("", include("requests_engine.member_pages.urls")),
    path("", include("communities.urls")),
]
