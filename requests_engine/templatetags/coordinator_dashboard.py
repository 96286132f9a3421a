"""`{% coordinator_dashboard %}`: the figures of `requests_engine.admin.dashboard` on the admin index."""

from __future__ import annotations

from django import template

from requests_engine.admin.dashboard import dashboard

register = template.Library()


@register.inclusion_tag("admin/requests_engine/dashboard.html", takes_context=True)
def coordinator_dashboard(context) -> dict:
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_active or not user.is_staff:
        return {"board": None}
    return {"board": dashboard(user=user)}
