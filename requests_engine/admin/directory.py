"""The controller directory in the back office: controllers and the contacts who answer for them."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import Count, Q

from communities import tenancy
from communities.admin_tenancy import TenantAdminMixin
from requests_engine.directory.contacts import contact_issue_api_token, contact_revoke
from requests_engine.models import (
    Controller,
    ControllerContact,
    RequestState,
)


class ControllerContactInline(admin.TabularInline):
    """People who answer for this controller; untick "active" to revoke their portal and API access."""

    model = ControllerContact
    extra = 0
    fields = ["email", "name", "is_active", "api_token_hint", "last_seen_at"]
    readonly_fields = ["api_token_hint", "last_seen_at"]


@admin.register(ControllerContact)
class ControllerContactAdmin(TenantAdminMixin, admin.ModelAdmin):
    """Contacts at controllers: portal access by emailed link, and API tokens shown once when issued."""

    list_display = ["email", "controller", "is_active", "api_token_hint", "last_seen_at"]
    list_filter = ["is_active"]
    search_fields = ["email", "controller__name"]
    autocomplete_fields = ["controller"]
    readonly_fields = ["api_token_hint", "last_seen_at", "created_at"]
    actions = ["issue_api_token", "revoke_access"]

    @admin.action(description="Issue a new API token (shown once)", permissions=["change"])
    def issue_api_token(self, request, queryset):

        for contact in queryset.filter(is_active=True):
            token = contact_issue_api_token(contact_id=contact.pk)
            self.message_user(
                request,
                f"API token for {contact.email}: {token} (copy it now: it is not stored)",
                messages.WARNING,
            )

    @admin.action(description="Revoke portal and API access", permissions=["change"])
    def revoke_access(self, request, queryset):

        for contact in queryset:
            contact_revoke(contact_id=contact.pk)
        self.message_user(request, f"Revoked {queryset.count()} contact(s).")


@admin.register(Controller)
class ControllerAdmin(TenantAdminMixin, admin.ModelAdmin):
    inlines = [ControllerContactInline]
    list_display = ["name", "slug", "transport", "email", "jurisdiction", "open_requests"]
    list_filter = ["transport", "jurisdiction", "individual_requests", "quality"]
    search_fields = ["name", "slug", "email", "runs"]
    prepopulated_fields = {"slug": ["name"]}

    def get_queryset(self, request):
        # The directory is shared; the open requests counted are those of the user's own communities.
        mine = Q()
        if not request.user.is_superuser:
            mine = Q(requests__member__community__in=tenancy.communities_of(request.user))
        return (
            super()
            .get_queryset(request)
            .annotate(
                _open=Count(
                    "requests",
                    filter=mine
                    & Q(
                        requests__state__in=[
                            s.value
                            for s in RequestState
                            if s
                            in (
                                RequestState.SENT,
                                RequestState.ACKNOWLEDGED,
                                RequestState.INFO_REQUESTED,
                                RequestState.EXTENDED,
                                RequestState.OVERDUE,
                            )
                        ]
                    ),
                )
            )
        )

    @admin.display(description="open requests", ordering="_open")
    def open_requests(self, obj):
        return obj._open
