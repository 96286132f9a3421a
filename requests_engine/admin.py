"""The coordinators' back office. Transition buttons come from django-fsm's admin mixin, but every button
goes through the same service as the portal and the API, so the event log and the guards always apply."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import Count, Q
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils import timezone
from django_fsm.admin import FSMAdminMixin

from core.audit import Actor

from . import (
    admin_dashboard,
    admin_inbox,  # noqa: F401  (the coordinators' inbox registers itself)
    forms,
    selectors,
    services,
)
from .admin_complaints import (  # importing it registers the complaints admin
    draft_complaints_action,
    draft_complaints_for_requests_action,
    request_escalation_flags,
)
from .admin_completeness import completeness_urls, request_completeness
from .events import describe
from .models import (
    Batch,
    Campaign,
    Controller,
    ControllerContact,
    DataRightsRequest,
    ReceivedFile,
    RequestEvent,
    RequestState,
)


class ServiceTransitionAdmin(FSMAdminMixin, admin.ModelAdmin):
    """Routes django-fsm admin buttons to services.<action>(…, actor=coordinator)."""

    fsm_fields = ["state"]
    service_actions: dict[str, object] = {}

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
        except services.RequestEngineError as exc:
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
    fields = ["created_at", "sentence", "actor_kind", "actor_id", "from_state", "to_state", "payload", "seq"]
    readonly_fields = fields
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


class DueFilter(admin.SimpleListFilter):
    title = "deadline"
    parameter_name = "due"

    def lookups(self, request, model_admin):
        return [("overdue", "Past the due date"), ("week", "Due within 7 days"), ("paused", "Clock paused")]

    def queryset(self, request, queryset):
        today = timezone.localdate()
        # The same conditions as the dashboard's figures, so its numbers match these lists.
        if self.value() == "overdue":
            return queryset.filter(admin_dashboard.overdue(today))
        if self.value() == "week":
            return queryset.filter(admin_dashboard.due_soon(today))
        if self.value() == "paused":
            return queryset.filter(clock_paused=True)
        return queryset


@admin.register(DataRightsRequest)
class DataRightsRequestAdmin(ServiceTransitionAdmin):
    list_display = [
        "reference",
        "member",
        "controller",
        "right",
        "state",
        "received_on",
        "due_on",
        "campaign",
    ]
    list_filter = ["state", DueFilter, admin_dashboard.RefusalGroundFilter, "right", "campaign",
                   "controller__jurisdiction"]  # fmt: skip
    list_select_related = ["member", "controller", "campaign"]
    search_fields = ["reference", "member__reference", "member__full_name", "controller__name"]
    date_hierarchy = "due_on"
    autocomplete_fields = ["controller"]
    inlines = [RequestEventInline]
    list_per_page = 100
    show_full_result_count = False  # COUNT(*) over millions of rows on every page is not worth it
    fsm_forms = {
        "extend": forms.ExtendForm,
        "request_information": forms.AskForInformationForm,
        "receive_information": forms.GiveInformationForm,
        "fulfil": forms.AnswerForm,
        "partially_fulfil": forms.RefusalForm,
        "refuse": forms.RefusalForm,
        "escalate_to_ico": forms.EscalateForm,
        "close": forms.NoteForm,
        "withdraw": forms.WithdrawForm,
    }
    service_actions = {
        "approve": lambda r, a: services.request_approve(request_id=r.pk, actor=a),
        "requeue": lambda r, a: services.request_requeue(request_id=r.pk, actor=a),
        "acknowledge": lambda r, a: services.request_acknowledge(request_id=r.pk, actor=a),
        "request_information": lambda r, a, **kw: services.request_ask_for_information(
            request_id=r.pk, actor=a, **kw
        ),
        "receive_information": lambda r, a, **kw: services.request_give_information(
            request_id=r.pk, actor=a, **kw
        ),
        "extend": lambda r, a, **kw: services.request_extend(request_id=r.pk, actor=a, **kw),
        "fulfil": lambda r, a, **kw: services.request_fulfil(request_id=r.pk, actor=a, **kw),
        "partially_fulfil": lambda r, a, **kw: services.request_partially_fulfil(
            request_id=r.pk, actor=a, **kw
        ),
        "refuse": lambda r, a, **kw: services.request_refuse(request_id=r.pk, actor=a, **kw),
        "complain_to_controller": lambda r, a: services.request_complain_to_controller(
            request_id=r.pk, actor=a
        ),
        "escalate_to_ico": lambda r, a, **kw: services.request_escalate_to_ico(
            request_id=r.pk, actor=a, **kw
        ),
        "close": lambda r, a, **kw: services.request_close(request_id=r.pk, actor=a, **kw),
        "withdraw": lambda r, a, **kw: services.request_withdraw(request_id=r.pk, actor=a, **kw),
    }

    actions = ["mark_submitted_by_web_form", draft_complaints_for_requests_action]

    @admin.display(description="escalation flags")
    def escalation_flags(self, obj):
        return request_escalation_flags(obj) if obj else "—"

    @admin.display(description="Art 15 completeness")
    def art15_completeness(self, obj):
        return request_completeness(obj)

    def get_urls(self):
        return completeness_urls(self) + super().get_urls()

    def get_readonly_fields(self, request, obj=None):
        # Every field is evidence or derived: coordinators change a request only through its transitions.
        return [f.name for f in self.model._meta.fields] + [
            "escalation_flags", "art15_completeness", "text_for_the_web_form",
        ]  # fmt: skip

    @admin.display(description="text to paste into the controller's web form")
    def text_for_the_web_form(self, obj):
        from django.utils.html import format_html

        from . import manual_transports

        if (
            obj is None
            or obj.controller.transport != "webform"
            or obj.state != RequestState.QUEUED
            or not obj.batch
        ):
            return "—"
        return format_html('<a href="{}">{}</a><pre style="white-space:pre-wrap">{}</pre>', obj.controller.webform_url,
                           obj.controller.webform_url, manual_transports.webform_text(obj))  # fmt: skip

    @admin.action(description="Mark submitted through the web form today")
    def mark_submitted_by_web_form(self, request, queryset):
        from . import manual_transports

        done, problems = 0, []
        for data_request in queryset.filter(state=RequestState.QUEUED):
            try:
                manual_transports.request_mark_submitted(request_id=data_request.pk, actor=Actor.user(request.user),
                                                         submitted_on=timezone.localdate())  # fmt: skip
                done += 1
            except services.RequestEngineError as error:
                problems.append(str(error))
        self.message_user(request, f"{done} request(s) recorded as submitted.")
        for problem in problems[:10]:
            self.message_user(request, problem, messages.ERROR)

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


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
        "launch": lambda c, a: services.campaign_launch(campaign_id=c.pk, actor=a),
    }

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_requests=Count("requests"))

    def get_urls(self):
        extra = [
            path("<int:campaign_id>/progress/", self.admin_site.admin_view(self.progress_view),
                 name="requests_engine_campaign_progress"),
            path("<int:campaign_id>/ask-identifiers/", self.admin_site.admin_view(self.ask_identifiers_view),
                 name="requests_engine_campaign_ask_identifiers"),
        ]  # fmt: skip
        return extra + super().get_urls()

    def change_view(self, request, object_id, form_url="", extra_context=None):
        campaign = self.get_object(request, object_id)
        extra_context = extra_context or {}
        if campaign is not None:
            if campaign.state == Campaign.State.DRAFT:
                extra_context["preview"] = selectors.campaign_preview(campaign)
            else:
                extra_context["progress"] = selectors.campaign_progress(campaign)
        return super().change_view(request, object_id, form_url, extra_context)

    def progress_view(self, request, campaign_id: int):
        campaign = get_object_or_404(Campaign, pk=campaign_id)
        if not self.has_view_permission(request, campaign):
            raise Http404
        return render(request, "admin/requests_engine/campaign/progress.html",
                      {"campaign": campaign, "progress": selectors.campaign_progress(campaign)})  # fmt: skip

    def ask_identifiers_view(self, request, campaign_id: int):
        if request.method != "POST" or not self.has_change_permission(request):
            raise Http404
        asked = services.campaign_ask_for_identifiers(campaign_id=campaign_id, actor=Actor.user(request.user))
        self.message_user(request, f"Asked {asked} member(s) to add their identifiers.")
        return redirect("admin:requests_engine_campaign_change", campaign_id)

    @admin.display(description="requests", ordering="_requests")
    def request_count(self, obj):
        return obj._requests

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)


@admin.register(Batch)
class BatchAdmin(admin.ModelAdmin):
    """Batches, and for letter controllers the print pack and the "posted" step."""

    change_form_template = "admin/requests_engine/batch/change_form.html"
    list_display = ["reference", "campaign", "controller", "transport", "state", "sent_at", "posted_on"]
    list_filter = ["state", "transport", "campaign"]
    list_select_related = ["campaign", "controller"]
    search_fields = ["reference", "controller__name"]
    readonly_fields = ["reference", "campaign", "controller", "state", "letter_pdf", "letter_sha256", "manifest",
                       "sent_at", "last_error", "reply_token"]  # fmt: skip

    def has_add_permission(self, request):
        return False

    def get_urls(self):
        extra = [
            path("<int:batch_id>/letter-pack/", self.admin_site.admin_view(self.letter_pack_view),
                 name="requests_engine_batch_letter_pack"),
            path("<int:batch_id>/posted/", self.admin_site.admin_view(self.posted_view),
                 name="requests_engine_batch_posted"),
        ]  # fmt: skip
        return extra + super().get_urls()

    def letter_pack_view(self, request, batch_id: int):
        from django.http import HttpResponse

        from . import manual_transports

        batch = get_object_or_404(Batch, pk=batch_id)
        pdf = manual_transports.letter_pack(batch_id=batch.pk)
        response = HttpResponse(pdf, content_type="application/pdf")
        response["Content-Disposition"] = f'attachment; filename="letter-pack-{batch.reference}.pdf"'
        return response

    def posted_view(self, request, batch_id: int):
        from . import manual_transports

        batch = get_object_or_404(Batch, pk=batch_id)
        form = forms.PostedForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            try:
                count = manual_transports.batch_mark_posted(
                    batch_id=batch.pk, actor=Actor.user(request.user), **form.cleaned_data
                )
            except services.RequestEngineError as error:
                self.message_user(request, str(error), messages.ERROR)
            else:
                self.message_user(request, f"Recorded as posted: {count} request(s) dispatched.")
                return redirect("admin:requests_engine_batch_change", batch.pk)
        return render(request, "admin/requests_engine/batch/posted.html", {
            **self.admin_site.each_context(request), "batch": batch, "form": form, "opts": self.model._meta,
            "title": f"Record that batch {batch.reference} was posted",
        })  # fmt: skip


class ControllerContactInline(admin.TabularInline):
    """People who answer for this controller; untick "active" to revoke their portal and API access."""

    model = ControllerContact
    extra = 0
    fields = ["email", "name", "is_active", "api_token_hint", "last_seen_at"]
    readonly_fields = ["api_token_hint", "last_seen_at"]


@admin.register(ControllerContact)
class ControllerContactAdmin(admin.ModelAdmin):
    """Contacts at controllers: portal access by emailed link, and API tokens shown once when issued."""

    list_display = ["email", "controller", "is_active", "api_token_hint", "last_seen_at"]
    list_filter = ["is_active"]
    search_fields = ["email", "controller__name"]
    autocomplete_fields = ["controller"]
    readonly_fields = ["api_token_hint", "last_seen_at", "created_at"]
    actions = ["issue_api_token", "revoke_access"]

    @admin.action(description="Issue a new API token (shown once)")
    def issue_api_token(self, request, queryset):
        from .contacts import contact_issue_api_token

        for contact in queryset.filter(is_active=True):
            token = contact_issue_api_token(contact_id=contact.pk)
            self.message_user(request, f"API token for {contact.email}: {token} (copy it now: it is not stored)",
                              messages.WARNING)  # fmt: skip

    @admin.action(description="Revoke portal and API access")
    def revoke_access(self, request, queryset):
        from .contacts import contact_revoke

        for contact in queryset:
            contact_revoke(contact_id=contact.pk)
        self.message_user(request, f"Revoked {queryset.count()} contact(s).")


@admin.register(Controller)
class ControllerAdmin(admin.ModelAdmin):
    inlines = [ControllerContactInline]
    list_display = ["name", "slug", "transport", "email", "jurisdiction", "open_requests"]
    list_filter = ["transport", "jurisdiction", "individual_requests", "quality"]
    search_fields = ["name", "slug", "email", "runs"]
    prepopulated_fields = {"slug": ["name"]}

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                _open=Count(
                    "requests",
                    filter=Q(
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
                )  # fmt: skip
            )
        )

    @admin.display(description="open requests", ordering="_open")
    def open_requests(self, obj):
        return obj._open


@admin.register(ReceivedFile)
class ReceivedFileAdmin(admin.ModelAdmin):
    list_display = ["original_name", "request", "content_type", "size", "received_at", "delete_after"]
    readonly_fields = ["request", "original_name", "stored", "size", "content_type", "sha256", "received_at"]
    list_select_related = ["request"]


@admin.register(RequestEvent)
class RequestEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "stream", "seq", "kind", "actor_kind", "from_state", "to_state"]
    list_filter = ["kind", "actor_kind"]
    search_fields = ["stream"]
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
