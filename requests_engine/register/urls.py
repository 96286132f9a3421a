"""The public register's pages and charts, included at `register/` by config/urls.py. The same data as
JSON is `register_views.register_json` and `register_views.controller_json`, mounted under /api/v1/."""

from django.urls import path

from requests_engine.register import views as register_views

urlpatterns = [
    path("", register_views.register_page, name="register"),
    path("charts/outcomes.svg", register_views.outcomes_chart, name="register-chart-outcomes"),
    path(
        "communities/<slug:slug>/constitution.pdf",
        register_views.constitution,
        name="register-constitution",
    ),
    path("controllers/<slug:slug>/", register_views.controller_page, name="register-controller"),
    path(
        "controllers/<slug:slug>/refusals.svg",
        register_views.refusals_chart,
        name="register-chart-refusals",
    ),
]
