"""The coordinators' back office. Transition buttons come from django-fsm's admin mixin, but every button
goes through the same service as the portal and the API, so the event log and the guards always apply."""

from __future__ import annotations

from django.contrib import admin, messages
from django.utils import timezone
from django.utils.html import format_html

from communities import tenancy
from communities.admin_tenancy import TenantAdminMixin
from core.audit import Actor
from requests_engine import forms, services
from requests_engine.admin import dashboard as admin_dashboard
from requests_engine.admin.complaints import (
    draft_complaints_for_requests_action,
    request_escalation_flags,
)
from requests_engine.admin.completeness import completeness_urls, request_completeness
from requests_engine.admin.shared import RequestEventInline, ServiceTransitionAdmin
from requests_engine.dispatch import manual
from requests_engine.escalation import complaints
from requests_engine.exceptions import RequestEngineError
from requests_engine.models import (
    DataRightsRequest,
    ReceivedFile,
    RequestEvent,
    RequestState,
)


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
    list_filter = [
        "state",
        DueFilter,
        admin_dashboard.RefusalGroundFilter,
        "right",
        "campaign",
        "controller__jurisdiction",
    ]
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
        "dispute_information": lambda r, a: services.request_dispute_information(request_id=r.pk, actor=a),
        "extend": lambda r, a, **kw: services.request_extend(request_id=r.pk, actor=a, **kw),
        "fulfil": lambda r, a, **kw: services.request_fulfil(request_id=r.pk, actor=a, **kw),
        "partially_fulfil": lambda r, a, **kw: services.request_partially_fulfil(
            request_id=r.pk, actor=a, **kw
        ),
        "refuse": lambda r, a, **kw: services.request_refuse(request_id=r.pk, actor=a, **kw),
        "complain_to_controller": lambda r, a: complaints.request_complain_to_controller(
            request_id=r.pk, actor=a
        ),
        "escalate_to_ico": lambda r, a, **kw: services.request_escalate_to_ico(
            request_id=r.pk, actor=a, **kw
        ),
        "close": lambda r, a, **kw: services.request_close(request_id=r.pk, actor=a, **kw),
        "withdraw": lambda r, a, **kw: services.request_withdraw(request_id=r.pk, actor=a, **kw),
    }

    # Approving a request for dispatch, taking it to a complaint or the ICO, closing or withdrawing it are
    # the coordinator's; a caseworker records what controllers answer.
    transition_perms = {
        "approve": tenancy.APPROVE,
        "complain_to_controller": tenancy.APPROVE,
        "escalate_to_ico": tenancy.APPROVE,
        "close": tenancy.APPROVE,
        "withdraw": tenancy.APPROVE,
    }

    actions = ["mark_submitted_by_web_form", draft_complaints_for_requests_action]

    @admin.display(description="escalation flags")
    def escalation_flags(self, obj):
        return request_escalation_flags(obj) if obj else "—"

    @admin.display(description="completeness")
    def art15_completeness(self, obj):
        return request_completeness(obj)

    def get_urls(self):
        return completeness_urls(self) + super().get_urls()

    def get_readonly_fields(self, request, obj=None):
        # Every field is evidence or derived: coordinators change a request only through its transitions.
        return [f.name for f in self.model._meta.fields] + [
            "escalation_flags",
            "art15_completeness",
            "text_for_the_web_form",
        ]

    @admin.display(description="text to paste into the controller's web form")
    def text_for_the_web_form(self, obj):

        if (
            obj is None
            or obj.controller.transport != "webform"
            or obj.state != RequestState.QUEUED
            or not obj.batch
        ):
            return "—"
        return format_html(
            '<a href="{}">{}</a><pre style="white-space:pre-wrap">{}</pre>',
            obj.controller.webform_url,
            obj.controller.webform_url,
            manual.webform_text(obj),
        )

    @admin.action(description="Mark submitted through the web form today", permissions=["change"])
    def mark_submitted_by_web_form(self, request, queryset):
        done, problems = 0, []
        mine = self.tenant_actionable(request, queryset, "requests_engine.change_datarightsrequest")
        for data_request in mine.filter(state=RequestState.QUEUED):
            try:
                manual.request_mark_submitted(
                    request_id=data_request.pk,
                    actor=Actor.user(request.user),
                    submitted_on=timezone.localdate(),
                )
                done += 1
            except RequestEngineError as error:
                problems.append(str(error))
        self.message_user(request, f"{done} request(s) recorded as submitted.")
        for problem in problems[:10]:
            self.message_user(request, problem, messages.ERROR)

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ReceivedFile)
class ReceivedFileAdmin(TenantAdminMixin, admin.ModelAdmin):
    list_display = ["original_name", "request", "content_type", "size", "received_at", "delete_after"]
    readonly_fields = ["request", "original_name", "stored", "size", "content_type", "sha256", "received_at"]
    list_select_related = ["request"]


@admin.register(RequestEvent)
class RequestEventAdmin(TenantAdminMixin, admin.ModelAdmin):
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
