"""What every page of the back office shares: transition buttons routed to the services, and the
read-only event history shown on each record (one inline, for requests, campaigns and complaints)."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import admin, messages
from django_fsm.admin import FSMAdminMixin

from core.audit import Actor
from requests_engine.events import describe
from requests_engine.exceptions import RequestEngineError
from requests_engine.models import (
    RequestEvent,
)


class ServiceTransitionAdmin(FSMAdminMixin, admin.ModelAdmin):
    """Routes django-fsm admin buttons to services.<action>(…, actor=coordinator)."""

    fsm_fields = ["state"]
    service_actions: dict[str, Callable[..., object]] = {}

    def get_help_text(self, transition) -> str:
        return transition.custom.get("help_text") or ""

    def _apply_fsm_transition(self, *, obj, transition_name, request, kwargs=None) -> bool:
        action = self.service_actions.get(transition_name)
        if action is None:
            self.message_user(
                request, f"'{transition_name}' cannot be done from the back office.", messages.ERROR
            )
            return False
        try:
            action(obj, Actor.user(request.user), **(kwargs or {}))
        except RequestEngineError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return False
        self.message_user(
            request,
            f"Done: {self.get_fsm_label(self._get_fsm_transition_by_name(obj=obj, transition_name=transition_name))}.",
        )
        return True


class EventInline(admin.TabularInline):
    model = RequestEvent
    extra = 0
    can_delete = False
    readonly_fields = fields = (
        "created_at",
        "sentence",
        "actor_kind",
        "actor_id",
        "from_state",
        "to_state",
        "payload",
        "seq",
    )
    ordering = ["seq"]

    @admin.display(description="what happened")
    def sentence(self, event):
        return describe(event)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class CampaignEventInline(EventInline):
    fk_name = "campaign"


class RequestEventInline(EventInline):
    fk_name = "request"


class ComplaintEventInline(EventInline):
    fk_name = "complaint"
