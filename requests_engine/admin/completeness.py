"""The answer checklist in the back office: a coordinator checks an access answer against Art 15(1)-(2), an
erasure against Art 17 and 19, an objection against Art 21, prefilled with what the controller declared, then reviews and sends the follow-up letter naming what is
missing, and records when the controller supplies it. Every button calls one function in `completeness`.

Wiring (admin.py): `completeness_urls(self)` in DataRightsRequestAdmin.get_urls, and `request_completeness`
as a read-only field on the request's change page (it links here).
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from core.audit import Actor
from requests_engine.exceptions import RequestEngineError
from requests_engine.forms import ChecklistForm
from requests_engine.letters import long_date
from requests_engine.models import DataRightsRequest
from requests_engine.responses import completeness

URL_NAME = "requests_engine_datarightsrequest_completeness"
TEMPLATE = "admin/requests_engine/datarightsrequest/completeness.html"
# What each checklist is called, by right.
LAW = {"access": "Art 15", "erasure": "Art 17 and 19", "objection": "Art 21"}


def _labels(right: str, items: list[str]) -> list[str]:
    labels = completeness.labels_of(right)
    return [labels.get(item, item) for item in items]


def checklist_title(data_request: DataRightsRequest) -> str:
    return f"{LAW.get(data_request.right, 'Answer')} checklist"


def completeness_urls(model_admin: admin.ModelAdmin) -> list[URLPattern]:
    def view(request: HttpRequest, request_id: int) -> HttpResponse:
        return completeness_view(model_admin, request, request_id)

    return [path("<int:request_id>/completeness/", model_admin.admin_site.admin_view(view), name=URL_NAME)]


def _save(data_request: DataRightsRequest, form: ChecklistForm, actor: Actor) -> str:
    review = completeness.review_save(data_request, form.cleaned_data["present"], actor)
    if review.completed_on:
        return "Checklist saved: nothing is missing any more, so the follow-up is complete."
    if not review.missing:
        return "Checklist saved: nothing is missing."
    if review.followup_sent_on:
        return f"Checklist saved: {len(review.missing)} item(s) still missing; the follow-up is already out."
    count = len(review.missing)
    return f"Checklist saved: {count} item(s) missing. Review the follow-up letter below and send it."


def completeness_view(model_admin: admin.ModelAdmin, request: HttpRequest, request_id: int) -> HttpResponse:
    data_request = get_object_or_404(
        DataRightsRequest.objects.select_related("controller", "member__community", "batch"), pk=request_id
    )
    if not model_admin.has_view_permission(request, data_request):
        raise Http404
    here = reverse(f"admin:{URL_NAME}", args=[data_request.pk])
    review = completeness.review_for(data_request)
    form = None
    if request.method == "POST":
        if not model_admin.has_change_permission(request, data_request):
            raise PermissionDenied
        actor = Actor.user(request.user)
        try:
            if "_send" in request.POST:
                if review is None:
                    raise RequestEngineError(
                        f"Fill in the checklist for request {data_request.reference} first."
                    )
                sent = completeness.followup_send(review, actor)
                done = (
                    f"Follow-up letter queued to {data_request.controller.email}: the controller has until "
                    f"{long_date(sent.followup_due_on)} to supply what is missing."
                )
            elif "_complete" in request.POST:
                if review is None:
                    raise RequestEngineError(f"No follow-up was sent for request {data_request.reference}.")
                completeness.followup_complete(review, actor)
                done = "Recorded: the controller supplied what was missing."
            else:
                form = ChecklistForm(request.POST, right=data_request.right)
                if not form.is_valid():
                    raise RequestEngineError(
                        "Correct the checklist: " + "; ".join(str(e) for e in form.errors["present"])
                    )
                done = _save(data_request, form, actor)
        except RequestEngineError as refused:
            model_admin.message_user(request, str(refused), messages.ERROR)
        else:
            model_admin.message_user(request, done, messages.SUCCESS)
            return redirect(here)
        review = completeness.review_for(DataRightsRequest.objects.get(pk=data_request.pk))

    problem = completeness.why_not_reviewable(data_request)
    if form is None:
        start = (review.present if review.reviewed_at else review.declared) if review else []
        form = ChecklistForm(initial={"present": start}, right=data_request.right)
    preview = None
    if not problem and review and review.missing and not review.followup_sent_on:
        review.request = data_request
        preview = completeness.followup_letter(review)
    return render(
        request,
        TEMPLATE,
        {
            **model_admin.admin_site.each_context(request),
            "opts": model_admin.model._meta,
            "original": data_request,
            "title": f"{checklist_title(data_request)} for request {data_request.reference}",
            "law": LAW.get(data_request.right, ""),
            "problem": problem,
            "form": form,
            "review": review,
            "declared": _labels(data_request.right, review.declared) if review else [],
            "missing": _labels(data_request.right, review.missing) if review else [],
            "preview": preview,
            "can_change": model_admin.has_change_permission(request, data_request),
        },
    )


@admin.display(description="completeness")
def request_completeness(obj: DataRightsRequest | None) -> str:
    """For DataRightsRequestAdmin (change page): where the checklist stands, with a link to fill it in."""
    if obj is None or obj.right not in LAW:
        return "Only for access, erasure and objection requests."
    review = completeness.review_for(obj)
    if completeness.why_not_reviewable(obj) and review is None:
        return "Can be checked once the controller has fulfilled or partly fulfilled the request."
    parts = []
    if review is not None:
        declared = ", ".join(review.declared) or "none"
        parts.append(f"Declared by the controller: {declared}.")
        if review.reviewed_at:
            missing = ", ".join(review.missing) or "nothing"
            parts.append(f"Checked: missing {missing}.")
        if review.followup_sent_on:
            parts.append(
                f"Follow-up sent on {long_date(review.followup_sent_on)}, "
                f"due by {long_date(review.followup_due_on)}."
            )
        if review.completed_on:
            parts.append(f"Supplied on {long_date(review.completed_on)}.")
    url = reverse(f"admin:{URL_NAME}", args=[obj.pk])
    return format_html('{} <a href="{}">Open the {}</a>', " ".join(parts), url, checklist_title(obj))
