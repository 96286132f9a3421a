from datetime import timedelta

from django import forms
from django.conf import settings
from django.contrib import admin
from django.urls import reverse
from django.utils import timezone

from .models import Community, Identifier, Invite, Mandate, Member, Purpose


class PurposeForm(forms.ModelForm):
    class Meta:
        model = Purpose
        fields = ["name", "text"]

    def clean(self):
        data = super().clean() or {}
        # Members signed this wording and letters quote it: changing it would make them say what no member
        # signed. A new wording is a new purpose, which members authorise by signing again.
        if self.instance.pk and self.has_changed() and self.instance.mandates.exists():
            raise forms.ValidationError(
                "Members have signed mandates naming this purpose, so its wording cannot change. Add a new "
                "purpose instead; members who want it sign a new mandate."
            )
        return data


class PurposeInline(admin.TabularInline):
    model = Purpose
    form = PurposeForm
    extra = 1
    can_delete = False  # mandates and campaigns name it


@admin.register(Community)
class CommunityAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "join_policy", "contact_email"]
    prepopulated_fields = {"slug": ["name"]}
    filter_horizontal = ["controllers"]
    search_fields = ["name"]
    inlines = [PurposeInline]


class IdentifierInline(admin.TabularInline):
    model = Identifier
    extra = 0
    autocomplete_fields = ["controller"]


@admin.register(Member)
class MemberAdmin(admin.ModelAdmin):
    list_display = ["full_name", "reference", "community", "joined_at", "left_at"]
    list_filter = ["community"]
    search_fields = ["full_name", "reference", "user__email"]
    readonly_fields = ["reference"]
    list_select_related = ["community"]
    inlines = [IdentifierInline]


@admin.register(Mandate)
class MandateAdmin(admin.ModelAdmin):
    list_display = ["reference", "member", "state", "valid_from", "valid_until", "signed_at"]
    list_filter = ["state", "member__community"]
    search_fields = ["reference", "member__full_name", "member__reference"]
    list_select_related = ["member"]
    # A mandate is signed evidence: nobody edits it in the back office; members revoke it themselves.
    readonly_fields = [
        "reference",
        "member",
        "rights",
        "all_controllers",
        "controllers",
        "purposes",
        "valid_from",
        "valid_until",
        "may_complain_to_controllers",
        "may_represent_before_ico",
        "template_version",
        "text",
        "text_sha256",
        "signed_name",
        "signed_at",
        "signed_ip",
        "signed_user_agent",
        "pdf",
        "pdf_sha256",
        "state",
        "ended_at",
    ]

    def has_add_permission(self, request):
        return False


def _in_two_weeks():
    return timezone.now() + timedelta(days=14)


@admin.register(Invite)
class InviteAdmin(admin.ModelAdmin):
    """Invite links for closed communities: a coordinator creates one and sends the link to the person."""

    list_display = ["community", "note", "link", "uses", "max_uses", "expires_at"]
    list_filter = ["community"]
    readonly_fields = ["link", "uses", "created_by"]
    fields = ["community", "note", "expires_at", "max_uses", "link", "uses", "created_by"]

    def get_changeform_initial_data(self, request):
        return {"expires_at": _in_two_weeks(), **super().get_changeform_initial_data(request)}

    @admin.display(description="link to send")
    def link(self, obj):
        if not obj.pk:
            return "Shown once saved."
        return (
            settings.SITE_URL.rstrip("/")
            + reverse("join", args=[obj.community.slug])
            + f"?invite={obj.token}"
        )

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)
