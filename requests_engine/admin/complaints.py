"""The complaints ladder in the back office: draft, approve and send the s.164A complaint, record the
controller's acknowledgement and outcome, build and download the ICO pack, record the ICO case and outcome.

Every button is a small form that calls one service in `complaints` or `ico_pack`. The path for a silent
controller: requests list, filter "overdue", action "Draft complaints" → the draft's page, "Approve and
send" → (after the acknowledgement deadline) "Build the ICO pack" → "Download the pack".

Wiring (admin.py): import this module after its own registrations, or drop its ComplaintAdmin; add
`draft_complaints_action` to CampaignAdmin.actions and `draft_complaints_for_requests_action` to
DataRightsRequestAdmin.actions; `request_escalation_flags` can be a read-only field on the request page.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from communities import tenancy
from communities.admin_tenancy import TenantAdminMixin
from core.audit import Actor
from requests_engine.admin.dashboard import AcknowledgementFilter
from requests_engine.admin.shared import ComplaintEventInline
from requests_engine.escalation import complaints, ico_pack, selectors
from requests_engine.escalation.selectors import available_steps, next_step_text
from requests_engine.exceptions import RequestEngineError
from requests_engine.letters import long_date
from requests_engine.models import Campaign, Complaint, DataRightsRequest

TEMPLATES = "requests_engine/complaints/admin"
DEFAULT_ASK = (
    "We ask the ICO to investigate how the organisation handled these requests and this complaint, to tell "
    "it to comply with each request without further delay, and to use its enforcement powers if it does not."
)
KIT_ASK = (
    "I ask the ICO to investigate how the organisation handled my requests and the complaint about them, to "
    "tell it to comply with each request without further delay, and to use its enforcement powers if it does "
    "not."
)


# -- forms, one per step ----------------------------------------------------------------------------------


class ApproveForm(forms.Form):
    grounds = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 24, "cols": 100}),
        max_length=complaints.MAX_GROUNDS_CHARS,
        help_text="The complaint's text. The annex naming the members is added when it is sent.",
    )


class AcknowledgementForm(forms.Form):
    acknowledged_on = forms.DateField(
        initial=timezone.localdate, help_text="The day the controller's acknowledgement arrived."
    )


class OutcomeForm(forms.Form):
    outcome = forms.CharField(widget=forms.Textarea(attrs={"rows": 6, "cols": 100}), max_length=5000)
    resolved = forms.BooleanField(
        required=False,
        help_text="Tick if the outcome resolves the requests: those waiting on the complaint are then "
        "closed. Leave it unticked to take them to the ICO.",
    )


class IcoPackForm(forms.Form):
    what_happened = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 10, "cols": 100}),
        max_length=ico_pack.WHAT_HAPPENED_MAX,
        help_text="At most 2,000 characters, as on the ICO's form. Drafted from the requests; edit freely.",
    )
    harm = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 6, "cols": 100}),
        max_length=ico_pack.FREE_TEXT_MAX,
        label="How this has affected the members (harm)",
    )
    ask = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4, "cols": 100}),
        max_length=ico_pack.FREE_TEXT_MAX,
        label="What we ask the ICO to do",
        initial=DEFAULT_ASK,
    )


class KitForm(forms.Form):
    """What every member's kit says in sections 5 and 6; each member is asked to make section 5 their own."""

    harm = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 6, "cols": 100}),
        max_length=ico_pack.FREE_TEXT_MAX,
        label="How this has affected members (each member adapts it)",
    )
    ask = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4, "cols": 100}),
        max_length=ico_pack.FREE_TEXT_MAX,
        label="What members may ask the ICO to do",
        initial=KIT_ASK,
    )


class CaseForm(forms.Form):
    case_reference = forms.CharField(max_length=60, help_text="The reference the ICO gave the complaint.")
    submitted_on = forms.DateField(initial=timezone.localdate, help_text="The day the pack was submitted.")


class IcoOutcomeForm(forms.Form):
    outcome = forms.CharField(widget=forms.Textarea(attrs={"rows": 6, "cols": 100}), max_length=5000)


# -- the steps --------------------------------------------------------------------------------------------

K = Complaint.Kind
ST = Complaint.State


def _campaign_of(complaint: Complaint) -> int | None:
    return complaint.requests.exclude(campaign__isnull=True).values_list("campaign_id", flat=True).first()


def _redraft(complaint: Complaint, actor: Actor, data: dict) -> str:
    campaign_id = _campaign_of(complaint)
    if campaign_id is None:
        raise RequestEngineError(f"Complaint {complaint.reference} belongs to no campaign.")
    complaints.complaint_draft(campaign_id=campaign_id, controller_id=complaint.controller_id, actor=actor)
    return f"Draft {complaint.reference} brought up to date."


def _send(complaint: Complaint, actor: Actor, data: dict) -> str:
    report = complaints.complaint_approve_and_send(
        complaint_id=complaint.pk, actor=actor, grounds_text=data["grounds"]
    )
    return report.summary()


def _acknowledge(complaint: Complaint, actor: Actor, data: dict) -> str:
    done = complaints.complaint_record_acknowledgement(
        complaint_id=complaint.pk, acknowledged_on=data["acknowledged_on"], actor=actor
    )
    return f"Acknowledgement of {done.reference} recorded."


def _outcome(complaint: Complaint, actor: Actor, data: dict) -> str:
    done = complaints.complaint_record_outcome(
        complaint_id=complaint.pk, outcome=data["outcome"], resolved=data["resolved"], actor=actor
    )
    if data["resolved"]:
        return f"Outcome of {done.reference} recorded; its requests are closed."
    return f"Outcome of {done.reference} recorded as unresolved: build the ICO pack next."


def _ico_case(complaint: Complaint, actor: Actor, data: dict) -> str:
    done = ico_pack.ico_case_record(
        complaint_id=complaint.pk,
        case_reference=data["case_reference"],
        actor=actor,
        submitted_on=data["submitted_on"],
    )
    return f"ICO case {done.ico_case_reference} recorded; the requests are escalated to the ICO."


def _ico_outcome(complaint: Complaint, actor: Actor, data: dict) -> str:
    done = ico_pack.ico_outcome_record(complaint_id=complaint.pk, outcome=data["outcome"], actor=actor)
    return f"The ICO's outcome for {done.reference} is recorded; its requests are closed."


# step → (form, page title, action)
STEPS = {
    "redraft": (None, "Update the draft", _redraft),
    "send": (ApproveForm, "Approve and send the complaint", _send),
    "acknowledge": (AcknowledgementForm, "Record the controller's acknowledgement", _acknowledge),
    "outcome": (OutcomeForm, "Record the controller's outcome", _outcome),
    "ico-case": (CaseForm, "Record the ICO case reference", _ico_case),
    "ico-outcome": (IcoOutcomeForm, "Record the ICO's outcome", _ico_outcome),
}


# -- the complaint admin ----------------------------------------------------------------------------------


class NextStepFilter(admin.SimpleListFilter):
    title = "next step"
    parameter_name = "next"

    def lookups(self, request, model_admin):
        return [
            ("approve", "Waiting for approval"),
            ("ack_due", "Acknowledgement due"),
            ("ico_pack", "ICO pack to build"),
            ("ico_submit", "ICO pack to submit"),
            ("ico_open", "ICO case open"),
        ]

    def queryset(self, request, queryset):
        today = timezone.localdate()
        rules = {
            "approve": selectors.waiting_for_approval(),
            "ack_due": selectors.acknowledgement_awaited(today),
            "ico_pack": selectors.ico_pack_due(today),
            "ico_submit": selectors.ico_pack_to_submit(),
            "ico_open": selectors.ico_case_open(),
        }
        rule = rules.get(self.value() or "")
        return queryset if rule is None else queryset.filter(rule)


class ComplaintAdmin(TenantAdminMixin, admin.ModelAdmin):
    change_form_template = f"{TEMPLATES}/change_form.html"
    list_display = [
        "reference",
        "kind",
        "controller",
        "state",
        "request_count",
        "sent_on",
        "acknowledgement_due_on",
        "acknowledged_on",
        "next_step",
        "ico_case_reference",
    ]
    list_filter = [NextStepFilter, AcknowledgementFilter, "kind", "state"]
    list_select_related = ["controller"]
    search_fields = ["reference", "controller__name", "ico_case_reference", "requests__reference"]
    inlines = [ComplaintEventInline]
    readonly_fields = fields = (
        "reference",
        "kind",
        "community",
        "controller",
        "state",
        "next_step",
        "sent_on",
        "acknowledgement_due_on",
        "acknowledged_on",
        "grounds_text",
        "outcome",
        "ico_case_reference",
        "pack",
        "evidence_pack_sha256",
        "covered",
        "left_out",
    )

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(**selectors.complaint_flags())

    def has_add_permission(self, request) -> bool:
        return False  # drafts come from the requests they cover

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # a complaint and its history are evidence

    @admin.display(description="requests", ordering="_requests")
    def request_count(self, obj: Complaint) -> int:
        return obj._requests  # type: ignore[attr-defined]  # annotated by get_queryset

    @admin.display(description="next step")
    def next_step(self, obj: Complaint) -> str:
        return next_step_text(obj)

    @admin.display(description="grounds / what happened")
    def grounds_text(self, obj: Complaint):
        return format_html('<pre style="white-space: pre-wrap; max-width: 70em">{}</pre>', obj.grounds)

    @admin.display(description="file")
    def pack(self, obj: Complaint):
        if not obj.evidence_pack:
            return "-"
        url = reverse("admin:requests_engine_complaint_step", args=[obj.pk, "download"])
        return format_html('<a href="{}">{}</a>', url, PurePosixPath(str(obj.evidence_pack.name)).name)

    @admin.display(description="requests covered, and what went wrong")
    def covered(self, obj: Complaint):
        rows = [
            (
                reverse("admin:requests_engine_datarightsrequest_change", args=[item.request.pk]),
                item.request.reference,
                item.request.member.reference,
                item.request.get_state_display(),
                "; ".join(complaints.REASON_LABELS[r] for r in item.reasons) or "-",
            )
            for item in complaints.covered_requests(obj)
        ]
        if not rows:
            return "-"
        body = format_html_join(
            "", '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td></tr>', rows
        )
        return format_html(
            "<table><thead><tr><th>Request</th><th>Member</th><th>State</th><th>Flags</th></tr></thead>"
            "<tbody>{}</tbody></table>",
            body,
        )

    @admin.display(description="left out of the ICO pack")
    def left_out(self, obj: Complaint):
        rows = ico_pack.ico_pack_left_out(obj)
        if not rows:
            return "-"
        return format_html(
            "<ul>{}</ul>",
            format_html_join(
                "",
                "<li>{} ({}): {}</li>",
                ((row["member"], ", ".join(row["requests"]), row["reason"]) for row in rows),
            ),
        )

    def get_urls(self):
        extra = [
            path(
                "<int:complaint_id>/step/<slug:step>/",
                self.admin_site.admin_view(self.step_view),
                name="requests_engine_complaint_step",
            ),
        ]
        return extra + super().get_urls()

    def may_take(self, request: HttpRequest, complaint: Complaint, step: str) -> bool:
        """A caseworker records the controller's acknowledgement; approving, sending, outcomes and the ICO
        pack (building it or downloading it) are the coordinator's; a viewer downloads a controller
        complaint's file only."""
        if step == "download":
            return complaint.kind != K.ICO or self.may(request, tenancy.APPROVE, complaint)
        if not self.has_change_permission(request, complaint):
            return False
        return step == "acknowledge" or self.may(request, tenancy.APPROVE, complaint)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        complaint = self.get_object(request, object_id)
        steps = [
            (step, label)
            for step, label in (available_steps(complaint) if complaint else [])
            if complaint and self.may_take(request, complaint, step)
        ]
        extra_context = {
            **(extra_context or {}),
            "steps": steps,
            "ico_not_yet": selectors.ico_pack_not_yet(complaint) if complaint else "",
            "ico_window": selectors.ico_window_closes_on(complaint)
            if complaint
            and complaint.kind == Complaint.Kind.CONTROLLER
            and complaint.state != Complaint.State.DRAFT
            else None,
            "show_save": False,
            "show_save_and_continue": False,
            "show_save_and_add_another": False,
            "show_delete_link": False,
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def step_view(self, request: HttpRequest, complaint_id: int, step: str) -> HttpResponseBase:
        complaint = get_object_or_404(
            self.get_queryset(request).select_related("controller", "community"), pk=complaint_id
        )
        if not self.has_view_permission(request, complaint) or not self.may_take(request, complaint, step):
            raise Http404
        if step not in dict(available_steps(complaint)):
            self.message_user(request, f"{complaint} cannot do that now.", messages.ERROR)
            return redirect("admin:requests_engine_complaint_change", complaint.pk)
        if step == "download":
            return self._download(complaint)
        if step == "ico-pack":
            return self._ico_pack_view(request, complaint)
        form_class, title, action = STEPS[step]
        form = (
            form_class(request.POST or None, initial=self._initial(complaint, step)) if form_class else None
        )
        if request.method == "POST" and (form is None or form.is_valid()):
            try:
                done = action(complaint, Actor.user(request.user), form.cleaned_data if form else {})
            except RequestEngineError as refused:
                self.message_user(request, str(refused), messages.ERROR)
            else:
                self.message_user(request, done, messages.SUCCESS)
                return redirect("admin:requests_engine_complaint_change", complaint.pk)
            if form is None:
                return redirect("admin:requests_engine_complaint_change", complaint.pk)
        return self._render_step(request, complaint, title, form)

    def _initial(self, complaint: Complaint, step: str) -> dict:
        return {"grounds": complaint.grounds} if step == "send" else {}

    def _render_step(self, request, complaint, title, form, extra=None) -> HttpResponse:
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": complaint,
            "title": title,
            "form": form,
            **(extra or {}),
        }
        return render(request, f"{TEMPLATES}/step.html", context)

    def _ico_pack_view(self, request: HttpRequest, complaint: Complaint) -> HttpResponse:
        if ico_pack.self_complaint_kit_due(complaint.community):
            return self._kits_view(request, complaint)
        title = "Build the ICO complaint pack"
        if request.method == "POST":
            form = IcoPackForm(request.POST)
            if form.is_valid():
                try:
                    built = ico_pack.ico_pack_build(
                        complaint_id=complaint.pk, actor=Actor.user(request.user), **form.cleaned_data
                    )
                except RequestEngineError as refused:
                    self.message_user(request, str(refused), messages.ERROR)
                else:
                    self.message_user(
                        request,
                        f"ICO pack {built.complaint.reference} built for {len(built.represented)} member(s). "
                        "Download it, submit it on the ICO's website, then record the case reference.",
                        messages.SUCCESS,
                    )
                    for item in built.left_out:
                        self.message_user(request, f"Left out: {item}.", messages.WARNING)
                    return redirect("admin:requests_engine_complaint_change", built.complaint.pk)
        else:
            initial = {"ask": DEFAULT_ASK}
            latest = complaint.events.filter(kind=selectors.PACK_BUILT).order_by("-seq").first()
            if complaint.kind == K.ICO and latest:
                initial.update(
                    harm=latest.payload.get("harm", ""),
                    ask=latest.payload.get("ask", DEFAULT_ASK),
                    what_happened=complaint.grounds,
                )
            else:
                try:
                    initial["what_happened"] = ico_pack.what_happened_draft(complaint_id=complaint.pk)
                except RequestEngineError as refused:
                    self.message_user(request, str(refused), messages.WARNING)
            form = IcoPackForm(initial=initial)
        return self._render_step(request, complaint, title, form, {"is_ico_pack": True})

    def _kits_view(self, request: HttpRequest, complaint: Complaint) -> HttpResponse:
        """Without an Art 80(1) record the community cannot complain to the ICO: members get kits instead."""
        title = "Send members their kits to complain to the ICO themselves"
        form = KitForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            try:
                report = ico_pack.self_complaint_kits_send(
                    complaint_id=complaint.pk, actor=Actor.user(request.user), **form.cleaned_data
                )
            except RequestEngineError as refused:
                self.message_user(request, str(refused), messages.ERROR)
            else:
                self.message_user(
                    request,
                    f"{complaint.community.name} has no Article 80(1) record, so {len(report.kits)} member(s) "
                    "were each sent a kit to complain to the ICO themselves.",
                    messages.SUCCESS,
                )
                for item in report.left_out:
                    self.message_user(request, f"Left out: {item}.", messages.WARNING)
                return redirect("admin:requests_engine_complaint_change", complaint.pk)
        return self._render_step(request, complaint, title, form, {"is_ico_pack": True})

    def _download(self, complaint: Complaint) -> FileResponse:
        name = PurePosixPath(str(complaint.evidence_pack.name)).name
        if complaint.kind == K.ICO:
            name = f"ico-pack-{complaint.reference}.zip"
        return FileResponse(complaint.evidence_pack.open("rb"), as_attachment=True, filename=name)


if admin.site.is_registered(Complaint):
    admin.site.unregister(Complaint)
admin.site.register(Complaint, ComplaintAdmin)


# -- hooks for the campaign and request admins ------------------------------------------------------------


def _draft_for_pairs(request: HttpRequest, modeladmin, pairs: set[tuple[int, int]]) -> None:
    actor = Actor.user(request.user)
    drafted, problems = [], []
    for campaign_id, controller_id in sorted(pairs):
        try:
            complaint = complaints.complaint_draft(
                campaign_id=campaign_id, controller_id=controller_id, actor=actor
            )
        except RequestEngineError as refused:
            problems.append(str(refused))
        else:
            drafted.append(complaint)
    for problem in problems:
        modeladmin.message_user(request, problem, messages.WARNING)
    if drafted:
        url = reverse("admin:requests_engine_complaint_changelist") + "?next=approve"
        modeladmin.message_user(
            request,
            format_html(
                '{} draft complaint(s) ready: {}. <a href="{}">Review and approve them</a>.',
                len(drafted),
                ", ".join(f"{c.reference} ({c.controller.name})" for c in drafted),
                url,
            ),
            messages.SUCCESS,
        )


@admin.action(description="Draft complaints to controllers for escalated requests", permissions=["change"])
def draft_complaints_action(modeladmin, request: HttpRequest, queryset: QuerySet[Any]) -> None:
    """For CampaignAdmin.actions: one draft per controller of each selected campaign that has escalated
    requests (updating any draft already there). Only in communities where the user approves escalations."""
    queryset = modeladmin.tenant_actionable(request, queryset, tenancy.APPROVE)
    pairs = set(
        Campaign.controllers.through.objects.filter(campaign_id__in=queryset.values("pk")).values_list(
            "campaign_id", "controller_id"
        )
    )
    _draft_for_pairs(request, modeladmin, pairs)


@admin.action(description="Draft complaints to their controllers", permissions=["change"])
def draft_complaints_for_requests_action(modeladmin, request: HttpRequest, queryset: QuerySet[Any]) -> None:
    """For DataRightsRequestAdmin.actions: drafts for the campaign × controller of the selected requests
    (each draft covers every escalated request of that pair, not only the selected ones). Only in
    communities where the user approves escalations."""
    queryset = modeladmin.tenant_actionable(request, queryset, tenancy.APPROVE)
    pairs = set(
        queryset.exclude(campaign__isnull=True).values_list("campaign_id", "controller_id").distinct()
    )
    if not pairs:
        modeladmin.message_user(
            request, "None of the selected requests belongs to a campaign.", messages.WARNING
        )
        return
    _draft_for_pairs(request, modeladmin, pairs)


@admin.display(description="escalation flags")
def request_escalation_flags(obj: DataRightsRequest) -> str:
    """For DataRightsRequestAdmin (change page): what went wrong, or when escalation becomes possible."""
    reasons = complaints.escalation_reasons(obj)
    if reasons:
        return "; ".join(complaints.REASON_LABELS[r] for r in reasons)
    start = complaints.escalation_date(obj) if obj.answered_on is None else None
    if start and obj.state not in complaints.NOTHING_TO_ESCALATE:
        return f"None yet: if still unanswered, it can be escalated from {long_date(start)}."
    return "None"
