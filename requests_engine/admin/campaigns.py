"""Campaigns and their batches in the back office: create, preview, approve and follow a campaign;
print packs and the "posted" step for letter controllers."""

from __future__ import annotations

from datetime import date, timedelta
from typing import cast

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from communities import tenancy
from communities.admin_tenancy import TenantAdminMixin
from core.audit import Actor
from requests_engine import forms
from requests_engine.admin.complaints import (
    draft_complaints_action,
)
from requests_engine.admin.shared import CampaignEventInline, ServiceTransitionAdmin
from requests_engine.campaigns import authorise as campaign_authorise
from requests_engine.campaigns import confirmation as campaign_confirmation
from requests_engine.campaigns import identifiers as campaign_identifiers
from requests_engine.campaigns import launch
from requests_engine.campaigns import selectors as campaign_selectors
from requests_engine.dispatch import manual
from requests_engine.exceptions import RequestEngineError
from requests_engine.models import (
    Batch,
    Campaign,
)


@admin.register(Campaign)
class CampaignAdmin(ServiceTransitionAdmin):
    """Create, preview, approve and follow a campaign: the change page shows who a launch would include
    and who lacks an identifier; once launched, its progress refreshes in place."""

    change_form_template = "admin/requests_engine/campaign/change_form.html"
    form = forms.CampaignAdminForm
    # "Save" comes first in the form, so Enter in a field saves: otherwise the browser presses the first
    # button it finds, "Approve and launch", and the letters go out.
    save_on_top = True
    actions = [draft_complaints_action]
    list_display = ["name", "reference", "community", "state", "request_count", "launched_at"]
    list_filter = ["state", "community"]
    search_fields = ["name", "reference"]
    filter_horizontal = ["controllers"]
    readonly_fields = ["reference", "launched_at", "launched_by", "created_by"]
    inlines = [CampaignEventInline]
    service_actions = {
        "launch": lambda c, a: launch.campaign_launch(campaign_id=c.pk, actor=a),
    }
    transition_perms = {"launch": tenancy.LAUNCH}

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_requests=Count("requests"))

    def get_urls(self):
        extra = [
            path(
                "<int:campaign_id>/progress/",
                self.admin_site.admin_view(self.progress_view),
                name="requests_engine_campaign_progress",
            ),
            path(
                "<int:campaign_id>/ask-identifiers/",
                self.admin_site.admin_view(self.ask_identifiers_view),
                name="requests_engine_campaign_ask_identifiers",
            ),
            path(
                "<int:campaign_id>/ask-confirmation/",
                self.admin_site.admin_view(self.ask_confirmation_view),
                name="requests_engine_campaign_ask_confirmation",
            ),
            path(
                "<int:campaign_id>/ask-authority/",
                self.admin_site.admin_view(self.ask_authority_view),
                name="requests_engine_campaign_ask_authority",
            ),
        ]
        return extra + super().get_urls()

    def change_view(self, request, object_id, form_url="", extra_context=None):
        campaign = cast(Campaign | None, self.get_object(request, object_id))
        extra_context = extra_context or {}
        if campaign is not None:
            # Asking members about a campaign is part of running it: the coordinator's buttons.
            extra_context["may_run"] = self.has_change_permission(request, campaign) and self.may(
                request, tenancy.LAUNCH, campaign
            )
            if campaign.state == Campaign.State.DRAFT:
                extra_context["preview"] = campaign_selectors.campaign_preview(campaign)
                extra_context["needs_confirmation"] = bool(
                    campaign_confirmation.irreversible_rights(campaign)
                )
                extra_context["confirm_by_default"] = campaign.confirm_by or (
                    timezone.localdate() + timedelta(days=campaign_confirmation.DEFAULT_DAYS_TO_CONFIRM)
                )
            else:
                extra_context["progress"] = campaign_selectors.campaign_progress(campaign)
        return super().change_view(request, object_id, form_url, extra_context)

    def progress_view(self, request, campaign_id: int):
        campaign = self.tenant_object_or_404(request, campaign_id)
        return render(
            request,
            "admin/requests_engine/campaign/progress.html",
            {"campaign": campaign, "progress": campaign_selectors.campaign_progress(campaign)},
        )

    def _campaign_to_ask_about(self, request, campaign_id: int) -> Campaign:
        """Asking members about a campaign is part of running it: the coordinator's, in its community."""
        if request.method != "POST":
            raise Http404
        campaign = self.tenant_object_or_404(request, campaign_id, perm=tenancy.LAUNCH)
        if not self.has_change_permission(request, campaign):
            raise Http404
        return campaign

    def ask_identifiers_view(self, request, campaign_id: int):
        self._campaign_to_ask_about(request, campaign_id)
        asked = campaign_identifiers.campaign_ask_for_identifiers(
            campaign_id=campaign_id, actor=Actor.user(request.user)
        )
        self.message_user(request, f"Asked {asked} member(s) to add their identifiers.")
        return redirect("admin:requests_engine_campaign_change", campaign_id)

    def ask_confirmation_view(self, request, campaign_id: int):
        self._campaign_to_ask_about(request, campaign_id)
        try:
            confirm_by = date.fromisoformat(request.POST.get("confirm_by", ""))
        except ValueError:
            self.message_user(
                request, "Enter the date members must answer by, like 2027-01-31.", messages.ERROR
            )
            return redirect("admin:requests_engine_campaign_change", campaign_id)
        try:
            asked = campaign_confirmation.campaign_ask_to_confirm(
                campaign_id=campaign_id, confirm_by=confirm_by, actor=Actor.user(request.user)
            )
        except RequestEngineError as error:
            self.message_user(request, str(error), messages.ERROR)
        else:
            self.message_user(
                request,
                f"Asked {asked} member(s) to confirm the erasure or objection requests by "
                f"{confirm_by:%-d %B %Y}. Only those who say yes are included; silence is no.",
            )
        return redirect("admin:requests_engine_campaign_change", campaign_id)

    def ask_authority_view(self, request, campaign_id: int):
        self._campaign_to_ask_about(request, campaign_id)
        asked = campaign_authorise.campaign_ask_to_authorise(
            campaign_id=campaign_id, actor=Actor.user(request.user)
        )
        self.message_user(
            request,
            f"Asked {asked} member(s) whether the community may act for them in this campaign. They are "
            "included only once they sign a mandate that names it.",
        )
        return redirect("admin:requests_engine_campaign_change", campaign_id)

    @admin.display(description="requests", ordering="_requests")
    def request_count(self, obj):
        return obj._requests

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)


@admin.register(Batch)
class BatchAdmin(TenantAdminMixin, admin.ModelAdmin):
    """Batches, and for letter controllers the print pack and the "posted" step."""

    change_form_template = "admin/requests_engine/batch/change_form.html"
    list_display = ["reference", "campaign", "controller", "transport", "state", "sent_at", "posted_on"]
    list_filter = ["state", "transport", "campaign"]
    list_select_related = ["campaign", "controller"]
    search_fields = ["reference", "controller__name"]
    readonly_fields = [
        "reference",
        "campaign",
        "controller",
        "state",
        "letter_file",
        "letter_sha256",
        "manifest_file",
        "sent_at",
        "last_error",
        "reply_token",
    ]

    def has_add_permission(self, request):
        return False

    # The stored files are not under a public URL (media is never served): staff download them here.
    @admin.display(description="Letter (PDF)")
    def letter_file(self, obj: Batch) -> str:
        return self._file_link(obj, "letter", obj.letter_pdf)

    @admin.display(description="Manifest (CSV)")
    def manifest_file(self, obj: Batch) -> str:
        return self._file_link(obj, "manifest", obj.manifest)

    def _file_link(self, obj: Batch, which: str, field) -> str:
        if not field:
            return "—"
        url = reverse("admin:requests_engine_batch_file", args=[obj.pk, which])
        return format_html('<a href="{}">Download {}</a>', url, field.name.rsplit("/", 1)[-1])

    def file_view(self, request, batch_id: int, which: str):
        batch = self.tenant_object_or_404(request, batch_id)
        field = {"letter": batch.letter_pdf, "manifest": batch.manifest}.get(which)
        if not field:
            raise Http404("This batch has no such file.")
        return FileResponse(field.open("rb"), as_attachment=True, filename=field.name.rsplit("/", 1)[-1])

    def get_urls(self):
        extra = [
            path(
                "<int:batch_id>/letter-pack/",
                self.admin_site.admin_view(self.letter_pack_view),
                name="requests_engine_batch_letter_pack",
            ),
            path(
                "<int:batch_id>/file/<slug:which>/",
                self.admin_site.admin_view(self.file_view),
                name="requests_engine_batch_file",
            ),
            path(
                "<int:batch_id>/posted/",
                self.admin_site.admin_view(self.posted_view),
                name="requests_engine_batch_posted",
            ),
        ]
        return extra + super().get_urls()

    def letter_pack_view(self, request, batch_id: int):
        batch = self.tenant_object_or_404(request, batch_id)
        pdf = manual.letter_pack(batch_id=batch.pk)
        response = HttpResponse(pdf, content_type="application/pdf")
        response["Content-Disposition"] = f'attachment; filename="letter-pack-{batch.reference}.pdf"'
        return response

    def posted_view(self, request, batch_id: int):
        batch = self.tenant_object_or_404(request, batch_id)
        if not self.has_change_permission(request, batch):
            raise PermissionDenied
        form = forms.PostedForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            try:
                count = manual.batch_mark_posted(
                    batch_id=batch.pk, actor=Actor.user(request.user), **form.cleaned_data
                )
            except RequestEngineError as error:
                self.message_user(request, str(error), messages.ERROR)
            else:
                self.message_user(request, f"Recorded as posted: {count} request(s) dispatched.")
                return redirect("admin:requests_engine_batch_change", batch.pk)
        return render(
            request,
            "admin/requests_engine/batch/posted.html",
            {
                **self.admin_site.each_context(request),
                "batch": batch,
                "form": form,
                "opts": self.model._meta,
                "title": f"Record that batch {batch.reference} was posted",
            },
        )
