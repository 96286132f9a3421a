from datetime import timedelta
from pathlib import PurePosixPath
from typing import cast

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from core.admin import OutboundMessageAdmin
from core.models import OutboundMessage

from . import representation, tenancy
from .admin_tenancy import TenantAdminMixin, TenantInlineMixin
from .invitations import imports, letters
from .models import Community, Identifier, Invitation, Invite, Mandate, Member, Purpose, StaffMembership
from .services import CommunityError


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


class PurposeInline(TenantInlineMixin, admin.TabularInline):
    model = Purpose
    form = PurposeForm
    extra = 1
    can_delete = False  # mandates and campaigns name it


class CommunityForm(forms.ModelForm):
    # The constitution is checked (PDF, size) and stored encrypted by the service, never by the model form.
    constitution_upload = forms.FileField(
        required=False,
        label="Constitution (PDF)",
        help_text="The governing document that shows the points above. Uploading one replaces the last.",
    )

    class Meta:
        model = Community
        exclude: list[str] = []

    def clean_constitution_upload(self):
        upload = self.cleaned_data.get("constitution_upload")
        if not upload:
            return None
        data = upload.read()
        try:
            representation.constitution_check(data)
        except CommunityError as refused:
            raise forms.ValidationError(str(refused)) from None
        return data


@admin.register(Community)
class CommunityAdmin(TenantAdminMixin, admin.ModelAdmin):
    form = CommunityForm
    list_display = ["name", "slug", "join_policy", "contact_email", "represents_before_ico"]
    prepopulated_fields = {"slug": ["name"]}
    filter_horizontal = ["controllers"]
    search_fields = ["name"]
    inlines = [PurposeInline]
    readonly_fields = ["constitution_on_file", "representation_status"]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "name",
                    "slug",
                    "purpose",
                    "description",
                    "contact_email",
                    "postal_address",
                    "legal_name",
                    "registration_number",
                    "agent_name",
                    "join_policy",
                    "rights",
                    "controllers",
                    "brand_colour",
                    "retention_days",
                ]
            },
        ),
        (
            "Representation (Article 80(1))",
            {
                "description": "A community may represent members before the ICO only when every part of "
                "this record is filled in and its constitution is uploaded (Article 80(1) UK GDPR, section "
                "187 Data Protection Act 2018). The record is shown on the public register. Without it, "
                "members are given a kit to complain to the ICO themselves.",
                "fields": [
                    "representation_status",
                    "legal_form",
                    "not_for_profit",
                    "statutory_objectives",
                    "data_protection_activity",
                    "constitution_on_file",
                    "constitution_upload",
                    "offers_court_representation",
                ],
            },
        ),
    ]

    @admin.display(description="represents before the ICO", boolean=True)
    def represents_before_ico(self, obj: Community) -> bool:
        return obj.art80_eligible

    @admin.display(description="status")
    def representation_status(self, obj: Community) -> str:
        if not obj.pk or not obj.art80_eligible:
            return "Incomplete: the community does not represent members before the ICO."
        if obj.offers_court:
            return "Complete: members may authorise representation before the ICO and in court."
        return "Complete: members may authorise representation before the ICO."

    @admin.display(description="constitution on file")
    def constitution_on_file(self, obj: Community):
        if not obj.pk or not obj.constitution:
            return "None uploaded."
        if not obj.art80_eligible:
            return f"Uploaded (SHA-256 {obj.constitution_sha256}); published once the record is complete."
        url = reverse("register-constitution", args=[obj.slug])
        return format_html('<a href="{}">On the register</a> (SHA-256 {})', url, obj.constitution_sha256)

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        data = form.cleaned_data.get("constitution_upload")
        if data:
            representation.constitution_store(community_id=obj.pk, data=data)


class IdentifierInline(TenantInlineMixin, admin.TabularInline):
    model = Identifier
    extra = 0
    autocomplete_fields = ["controller"]


@admin.register(Member)
class MemberAdmin(TenantAdminMixin, admin.ModelAdmin):
    list_display = ["full_name", "reference", "community", "joined_at", "left_at"]
    list_filter = ["community"]
    search_fields = ["full_name", "reference", "user__email"]
    readonly_fields = ["reference"]
    list_select_related = ["community"]
    inlines = [IdentifierInline]

    def get_readonly_fields(self, request, obj=None):
        # A membership stays with the person who joined: their login is not reassigned from the back office.
        return [*super().get_readonly_fields(request, obj), *(["user"] if obj else [])]


@admin.register(Mandate)
class MandateAdmin(TenantAdminMixin, admin.ModelAdmin):
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
        "may_represent_in_court",
        "template_version",
        "text",
        "text_sha256",
        "signed_name",
        "signed_at",
        "signed_ip",
        "signed_user_agent",
        "pdf_file",
        "pdf_sha256",
        "state",
        "ended_at",
    ]

    @admin.display(description="PDF")
    def pdf_file(self, obj: Mandate) -> str:
        # Stored encrypted, with no URL: the member downloads it from their own pages.
        return PurePosixPath(str(obj.pdf.name)).name if obj.pdf else "—"

    def has_add_permission(self, request):
        return False


def _in_two_weeks():
    return timezone.now() + timedelta(days=14)


@admin.register(Invite)
class InviteAdmin(TenantAdminMixin, admin.ModelAdmin):
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


class MembersImportForm(forms.Form):
    community = forms.ModelChoiceField(queryset=Community.objects.none())
    membership_list = forms.FileField(
        label="Membership list (CSV)",
        help_text="The first line names the columns: name, and email or postal address (or both); "
        "membership number is optional. People already invited or already members are left alone.",
    )
    dry_run = forms.BooleanField(
        required=False, initial=True, label="Dry run: check the list and report, but invite nobody yet"
    )

    def __init__(self, *args, communities=None, **kwargs):
        super().__init__(*args, **kwargs)
        cast(forms.ModelChoiceField, self.fields["community"]).queryset = communities
        if communities is not None and communities.count() == 1:
            self.fields["community"].initial = communities.first()

    def clean_membership_list(self) -> str:
        upload = self.cleaned_data["membership_list"]
        if upload.size > 20 * 1024 * 1024:
            raise forms.ValidationError("The list is larger than 20 MB: split it into several files.")
        try:
            return upload.read().decode("utf-8-sig")
        except UnicodeDecodeError:
            raise forms.ValidationError(
                "The list is not UTF-8 text: save it from the spreadsheet as CSV UTF-8."
            ) from None


@admin.register(Invitation)
class InvitationAdmin(TenantAdminMixin, admin.ModelAdmin):
    """People from the community's membership list, invited to join by email or by letter."""

    list_display = ["name", "community", "channel", "email", "membership_number", "sent_at", "joined"]
    list_filter = ["community", "channel"]
    search_fields = ["name", "email", "membership_number"]
    readonly_fields = [
        "community",
        "name",
        "email",
        "postal_address",
        "membership_number",
        "channel",
        "imported_at",
        "sent_at",
        "joined",
    ]
    fields = list(readonly_fields)
    actions = ["print_letters"]

    def has_add_permission(self, request):
        return False  # people come in through "Import members"

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(boolean=True, description="joined")
    def joined(self, obj: Invitation) -> bool:
        return obj.invite.uses > 0

    def get_urls(self):
        view = self.admin_site.admin_view(self.import_view)
        return [path("import/", view, name="communities_invitation_import"), *super().get_urls()]

    def _import_communities(self, request):
        mine = Community.objects.all()
        if not request.user.is_superuser:
            mine = mine.filter(pk__in=tenancy.community_ids_where(request.user, "communities.add_invitation"))
        return mine

    def import_view(self, request):
        communities = self._import_communities(request)
        if not communities.exists():
            raise PermissionDenied
        form = MembersImportForm(request.POST or None, request.FILES or None, communities=communities)
        report = None
        if request.method == "POST" and form.is_valid():
            try:
                report = imports.invitations_import(
                    community=form.cleaned_data["community"],
                    text=form.cleaned_data["membership_list"],
                    dry_run=form.cleaned_data["dry_run"],
                    by=request.user,
                )
            except imports.ListRefused as refused:
                form.add_error("membership_list", str(refused))
        context = {
            **self.admin_site.each_context(request),
            "title": "Import members",
            "form": form,
            "report": report,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/communities/invitation/import.html", context)

    @admin.action(description="Print the invitation letters of the selected people without email")
    def print_letters(self, request, queryset):
        mine = self.tenant_actionable(request, queryset, "communities.change_invitation")
        pdf, count = letters.letters_print(invitation_ids=list(mine.values_list("pk", flat=True)))
        if not count:
            self.message_user(request, "None of the selected people is invited by letter.", messages.WARNING)
            return None
        response = HttpResponse(pdf, content_type="application/pdf")
        response["Content-Disposition"] = f'attachment; filename="invitation-letters-{count}.pdf"'
        return response


@admin.register(StaffMembership)
class StaffMembershipAdmin(admin.ModelAdmin):
    """Who works in which community's back office, and in which role. Only superusers give roles: a role is
    access to members' data."""

    list_display = ["user", "community", "role", "created_at"]
    list_filter = ["role", "community"]
    search_fields = ["user__email", "user__username", "community__name"]
    autocomplete_fields = ["user"]
    fields = ["user", "community", "role"]

    def _superuser(self, request) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_module_permission(self, request):
        return self._superuser(request)

    def has_view_permission(self, request, obj=None):
        return self._superuser(request)

    def has_add_permission(self, request):
        return self._superuser(request)

    def has_change_permission(self, request, obj=None):
        return self._superuser(request)

    def has_delete_permission(self, request, obj=None):
        return self._superuser(request)

    def get_readonly_fields(self, request, obj=None):
        # A role moves to another person or community by removing it and giving a new one.
        return ["user", "community"] if obj else []

    def save_model(self, request, obj, form, change):
        # Through the service, so the user's role groups follow their roles.
        obj.pk = tenancy.staff_role_grant(user=obj.user, community=obj.community, role=obj.role).pk

    def delete_model(self, request, obj):
        tenancy.staff_role_revoke(user=obj.user, community=obj.community)

    def delete_queryset(self, request, queryset):
        for membership in queryset.select_related("user", "community"):
            tenancy.staff_role_revoke(user=membership.user, community=membership.community)


# The outbox (core, which knows no community) shown per community: each message with the record it is about.
class CommunityOutboxAdmin(TenantAdminMixin, OutboundMessageAdmin):
    @admin.action(description="Send the selected failed emails again", permissions=["send"])
    def send_again(self, request, queryset):
        # Only messages of communities where the user's role may send them again.
        mine = self.tenant_actionable(request, queryset, "core.change_outboundmessage")
        return super().send_again(request, mine)


if admin.site.is_registered(OutboundMessage):
    admin.site.unregister(OutboundMessage)
admin.site.register(OutboundMessage, CommunityOutboxAdmin)
