"""What every page of the back office shares: transition buttons routed to the services, and the
read-only event history shown on each record (one inline, for requests, campaigns and complaints)."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import admin, messages
from django_fsm.admin import FSMAdminMixin

from communities.admin_tenancy import TenantAdminMixin
from core.audit import Actor
from requests_engine.events import describe
from requests_engine.exceptions import RequestEngineError
from requests_engine.models import (
    RequestEvent,
)


class ServiceTransitionAdmin(TenantAdminMixin, FSMAdminMixin, admin.ModelAdmin):
    """Routes django-fsm admin buttons to services.<action>(…, actor=coordinator). A button needs "change"
    on the record in its community, and the steps in `transition_perms` a permission only coordinators hold
    (communities/tenancy.py: launching, approving, escalating)."""

    fsm_fields = ["state"]
    service_actions: dict[str, Callable[..., object]] = {}
    transition_perms: dict[str, str] = {}

    def get_help_text(self, transition) -> str:
        return transition.custom.get("help_text") or ""

    def may_transition(self, request, obj, transition_name: str) -> bool:
        if not self.has_change_permission(request, obj):
            return False
        perm = self.transition_perms.get(transition_name)
        return perm is None or self.may(request, perm, obj)

    def _get_fsm_extra_context(self, *, request, obj):
        # Only the buttons this user may press on this record are shown.
        for block in super()._get_fsm_extra_context(request=request, obj=obj):
            block.available_transitions = [
                t for t in block.available_transitions if self.may_transition(request, obj, t.name)
            ]
            if block.available_transitions:
                yield block

    def _apply_fsm_transition(self, *, obj, transition_name, request, kwargs=None) -> bool:
        if not self.may_transition(request, obj, transition_name):
            self.message_user(request, "You may not do that in this community.", messages.ERROR)
            return False
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
