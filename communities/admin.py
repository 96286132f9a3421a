from django.contrib import admin

from .models import Community, Identifier, Mandate, Member


@admin.register(Community)
class CommunityAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "join_policy", "contact_email"]
    prepopulated_fields = {"slug": ["name"]}
    filter_horizontal = ["controllers"]
    search_fields = ["name"]


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
        "reference", "member", "rights", "all_controllers", "controllers", "purposes", "valid_from",
        "valid_until", "may_complain_to_controllers", "may_represent_before_ico", "template_version", "text",
        "text_sha256", "signed_name", "signed_at", "signed_ip", "signed_user_agent", "pdf", "pdf_sha256",
        "state", "ended_at",
    ]  # fmt: skip

    def has_add_permission(self, request):
        return False
