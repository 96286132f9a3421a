"""The coordinators' inbox: every reply read from the mailbox, and the unmatched ones to attach by hand.

Messages are evidence: nothing here edits them. The detail page shows the decrypted text, escaped; the
changelist's action box takes a reference to attach the selected messages to (through the same service an
operator script would use, so the event is always recorded)."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.html import format_html, format_html_join

from communities import tenancy
from communities.admin_tenancy import TenantAdminMixin
from core import crypto
from core.audit import Actor
from requests_engine.exceptions import RequestEngineError
from requests_engine.models import Batch, DataRightsRequest, InboundMessage
from requests_engine.responses import inbound

MAX_EML_BYTES = 25 * 1024 * 1024  # about the largest message mail servers accept


class ReplyUploadForm(forms.Form):
    eml = forms.FileField(
        label="The reply, as an .eml file",
        help_text="Most mail clients save a message as .eml (“Save as” or drag it out of the window).",
    )

    def clean_eml(self):
        upload = self.cleaned_data["eml"]
        if upload.size == 0:
            raise forms.ValidationError("The file is empty.")
        if upload.size > MAX_EML_BYTES:
            raise forms.ValidationError("The file is larger than 25 MB: that is not one email.")
        raw = upload.read()
        if not inbound.looks_like_email(raw):
            raise forms.ValidationError(
                "This is not an email saved as .eml: it has no From, Date or Subject header."
            )
        return raw


CHANGE = "requests_engine.change_inboundmessage"


class InboxActionForm(ActionForm):
    reference = forms.CharField(
        required=False,
        max_length=40,
        label="Reference",
        help_text="For “attach”: the request or batch reference this reply belongs to.",
    )


@admin.register(InboundMessage)
class InboundMessageAdmin(TenantAdminMixin, admin.ModelAdmin):
    list_display = ["received_at", "from_address", "subject", "status", "matched_by", "batch", "request"]
    list_filter = ["status", "matched_by"]
    list_select_related = ["batch__controller", "request"]
    search_fields = ["subject", "from_address", "message_id"]
    date_hierarchy = "received_at"
    list_per_page = 100
    action_form = InboxActionForm
    actions = ["attach_by_reference", "dismiss"]
    readonly_fields = fields = (
        "received_at",
        "sent_at",
        "from_address",
        "to_addresses",
        "subject",
        "status",
        "matched_by",
        "batch",
        "request",
        "body",
        "attachments",
        "message_id",
        "in_reply_to",
        "mailbox",
        "uid_validity",
        "uid",
        "raw_sha256",
    )

    def has_add_permission(self, request):
        return False

    def get_urls(self):
        upload = self.admin_site.admin_view(self.upload_view)
        return [path("upload/", upload, name="requests_engine_inboundmessage_upload"), *super().get_urls()]

    def upload_view(self, request):
        if not self.has_view_permission(request) or not super().has_change_permission(request):
            raise PermissionDenied
        form = ReplyUploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            mine = None if request.user.is_superuser else tenancy.community_ids_where(request.user, CHANGE)
            outcome = inbound.inbound_upload(raw=form.cleaned_data["eml"], communities=mine)
            text = {
                "matched": "The reply was matched and recorded on its batch or request.",
                "unmatched": "The reply matched no batch or request: it waits in the inbox to be attached.",
                "duplicate": "This reply was already added; nothing changed.",
            }[outcome]
            self.message_user(request, text, messages.WARNING if outcome != "matched" else messages.SUCCESS)
            return redirect("admin:requests_engine_inboundmessage_changelist")
        context = {
            **self.admin_site.each_context(request),
            "title": "Add a reply from a file",
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/requests_engine/inboundmessage/upload.html", context)

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        # The changelist's actions need "change"; a message itself is never edited.
        return obj is None and super().has_change_permission(request, obj)

    def _reference_is_mine(self, request, reference: str) -> bool:
        """A reply is attached only to a request or batch where the user handles the inbox."""
        forms = list(dict.fromkeys([reference.strip(), reference.strip().upper()]))
        return any(
            tenancy.scope(model.objects.filter(reference__in=forms), request.user, perm=CHANGE).exists()
            for model in (DataRightsRequest, Batch)
        )

    def _message(self, obj: InboundMessage):
        # Parsed once per row: several columns read the same message.
        if not hasattr(obj, "_parsed"):
            try:
                parsed: object = inbound.parsed_message(obj)
            except (crypto.CryptoError, OSError) as exc:
                parsed = exc
            obj._parsed = parsed  # type: ignore[attr-defined]
        return obj._parsed  # type: ignore[attr-defined]

    @admin.display(description="message text")
    def body(self, obj: InboundMessage):
        message = self._message(obj)
        if isinstance(message, Exception):
            return f"The stored message cannot be read: {message}"
        text = inbound.plain_text(message).strip() or "(no text)"
        return format_html('<pre style="white-space: pre-wrap; max-width: 60em">{}</pre>', text)

    @admin.display(description="attachments")
    def attachments(self, obj: InboundMessage):
        message = self._message(obj)
        if isinstance(message, Exception):
            return "-"
        parts = [
            (part.get_filename() or "(unnamed)", part.get_content_type())
            for part in message.iter_attachments()
        ]
        if not parts:
            return "-"
        return format_html("<ul>{}</ul>", format_html_join("", "<li>{} ({})</li>", parts))

    @admin.action(
        description="Attach to the request or batch with the reference given", permissions=["change"]
    )
    def attach_by_reference(self, request, queryset):
        reference = request.POST.get("reference", "")
        actor = Actor.user(request.user)
        attached = 0
        if not self._reference_is_mine(request, reference):
            self.message_user(
                request,
                f"No request or batch of your communities has the reference {reference.strip()!r}.",
                messages.ERROR,
            )
            return
        for pk in self.tenant_actionable(request, queryset, CHANGE).values_list("pk", flat=True):
            try:
                inbound.inbound_attach(inbound_id=pk, reference=reference, actor=actor)
            except RequestEngineError as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                attached += 1
        if attached:
            self.message_user(request, f"Attached {attached} message(s) to {reference.strip()}.")

    @admin.action(description="Dismiss: belongs to no request (spam, out of office)", permissions=["change"])
    def dismiss(self, request, queryset):
        actor = Actor.user(request.user)
        dismissed = 0
        for pk in self.tenant_actionable(request, queryset, CHANGE).values_list("pk", flat=True):
            try:
                inbound.inbound_dismiss(inbound_id=pk, actor=actor)
            except RequestEngineError as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                dismissed += 1
        if dismissed:
            self.message_user(request, f"Dismissed {dismissed} message(s).")
