"""The outbox in the back office: read-only evidence of what was sent, with "send again" for failures."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from . import outbox
from .models import OutboundAttachment, OutboundMessage


class ReadOnlyMixin:
    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class OutboundAttachmentInline(ReadOnlyMixin, admin.TabularInline):
    model = OutboundAttachment
    extra = 0
    readonly_fields = fields = ("filename", "content_type", "size", "sha256")


MESSAGE_FIELDS: list[str | list[str] | tuple[str, ...]] = [
    "message_id",
    "from_email",
    "to",
    "cc",
    "reply_to",
    "subject",
    "headers",
    "body_text",
    "body_html",
]
DELIVERY_FIELDS: list[str | list[str] | tuple[str, ...]] = [
    "attempts",
    "last_error",
    "queued_at",
    "not_before",
    "claimed_at",
    "sent_at",
]


@admin.register(OutboundMessage)
class OutboundMessageAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["queued_at", "status", "recipients", "subject", "purpose", "attempts"]
    list_filter = ["status", "channel", "purpose"]
    search_fields = ["message_id", "subject", "subject_id", "to"]
    date_hierarchy = "queued_at"
    actions = ["send_again"]
    inlines = [OutboundAttachmentInline]
    fieldsets = [
        (None, {"fields": ["channel", "status", "purpose", "subject_type", "subject_id"]}),
        ("Message", {"fields": MESSAGE_FIELDS}),
        ("Delivery", {"fields": DELIVERY_FIELDS}),
    ]

    @admin.display(description="to", ordering="to")
    def recipients(self, message: OutboundMessage) -> str:
        return ", ".join(message.to)

    def has_send_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("core.change_outboundmessage")

    @admin.action(description="Send the selected failed emails again", permissions=["send"])
    def send_again(self, request: HttpRequest, queryset: QuerySet[OutboundMessage]) -> None:
        selected = list(queryset.values_list("pk", flat=True))
        queued = outbox.retry_failed(selected)
        self.message_user(request, f"{queued} email(s) queued to be sent again.")
        if queued < len(selected):
            self.message_user(
                request,
                f"{len(selected) - queued} selected email(s) were not failed and were left alone.",
                messages.WARNING,
            )
