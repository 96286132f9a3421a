"""A member's request pages: each request's timeline and days left, the answer to a controller's question,
the Art 15 checklist, the files returned (download, keep) and portability forwarding. Thin views: a request
or file of someone else is a 404; each action is one service call."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from core.audit import Actor
from core.crypto import CryptoError
from core.downloads import download
from core.operator import operator_alert
from requests_engine import services
from requests_engine.campaigns import confirmation as campaign_confirmation
from requests_engine.campaigns import sequencing
from requests_engine.escalation import ico_pack
from requests_engine.events import describe
from requests_engine.exceptions import ForwardingError, RequestEngineError, UploadRefused
from requests_engine.forms import ChecklistForm
from requests_engine.letters import long_date
from requests_engine.member_pages.forms import AnswerForm, ForwardForm
from requests_engine.models import (
    CHECKLISTS,
    OPEN_STATES,
    Confirmation,
    DataRightsRequest,
    InformationKind,
    ObjectionTo,
    ReceivedFile,
    RequestEvent,
    RequestState,
)
from requests_engine.responses import completeness, forwarding
from requests_engine.responses import files as returned_files


@login_required
@require_http_methods(["GET", "POST"])
def request_detail(request, reference: str):
    data_request = get_object_or_404(
        DataRightsRequest.objects.select_related("controller", "member__community", "mandate"),
        reference=reference,
        member__user=request.user,
    )
    can_answer = (
        data_request.state == RequestState.INFO_REQUESTED
        and data_request.info_kind != InformationKind.AUTHORITY
    )
    # Identity or authority evidence the request already carried (DPA 2018 s.54(3C)-(3D): the clock
    # restarts only for what the controller did not have): the member may say so, as a coordinator may.
    can_dispute = data_request.state == RequestState.INFO_REQUESTED and data_request.info_kind in (
        InformationKind.IDENTITY,
        InformationKind.AUTHORITY,
    )
    if request.method == "POST" and "already_supplied" in request.POST:
        return _already_supplied(request, data_request, allowed=can_dispute)
    if request.method == "POST" and "art15_checklist" in request.POST:
        return _art15_checklist_save(request, data_request)
    identity = data_request.info_kind == InformationKind.IDENTITY
    form = (
        AnswerForm(
            request.POST if request.method == "POST" else None,
            request.FILES if request.method == "POST" else None,
            identity=identity,
        )
        if can_answer
        else None
    )
    if request.method == "POST":
        if not can_answer:
            messages.error(request, "There is no question waiting for your answer on this request.")
            return redirect("request-detail", reference=reference)
        if form is not None and form.is_valid():
            try:
                sent = form.cleaned_data.get("document")
                services.request_answer_from_member(
                    request_id=data_request.pk,
                    answer=form.cleaned_data["answer"],
                    actor=Actor(Actor.MEMBER, str(data_request.member_id)),
                    document=returned_files.Upload(name=sent.name, data=sent) if sent else None,
                )
            except UploadRefused as error:
                form.add_error("document", str(error))
            except RequestEngineError as error:
                form.add_error(None, str(error))
            else:
                messages.success(request, "Thank you. Your answer was sent to the organisation.")
                return redirect("request-detail", reference=reference)
    events = [
        {"event": e, "sentence": describe(e)}
        for e in RequestEvent.objects.filter(request=data_request).order_by("seq")
    ]
    return render(
        request,
        "communities/request_detail.html",
        {
            "data_request": data_request,
            "community": data_request.member.community,
            "events": events,
            "form": form,
            "can_dispute": can_dispute,
            "days_left": data_request.days_left() if data_request.state in OPEN_STATES else None,
            "is_open": data_request.state in OPEN_STATES,
            "files": data_request.files.filter(deleted_at__isnull=True),
            "identity_documents": data_request.identity_documents.filter(deleted_at__isnull=True),
            "checklist": _art15_checklist(data_request),
            "complaint_kit": ico_pack.self_complaint_kit_of(data_request),
            **_forwarding(data_request),
        },
    )


def _already_supplied(request, data_request: DataRightsRequest, *, allowed: bool):
    """The member says the controller's question asks for what the request already carried."""
    if not allowed:
        messages.error(request, "There is no question about who you are or our authority on this request.")
        return redirect("request-detail", reference=data_request.reference)
    try:
        updated = services.request_dispute_information(
            request_id=data_request.pk,
            actor=Actor(Actor.MEMBER, str(data_request.member_id)),
            note="The member says the request already carried this.",
        )
    except RequestEngineError as error:
        messages.error(request, str(error))
    else:
        due = f" Its answer is still due by {long_date(updated.due_on)}." if updated.due_on else ""
        messages.success(
            request,
            f"We told {data_request.controller.name} that your request already carried this, so its "
            f"deadline does not restart.{due}",
        )
    return redirect("request-detail", reference=data_request.reference)


def _forwarding(data_request: DataRightsRequest) -> dict:
    return {
        "forwards": forwarding.forwards_of(data_request),
        "can_forward": not forwarding.why_not_forwardable(data_request),
    }


@login_required
@require_http_methods(["GET", "POST"])
def request_forward(request, reference: str):
    """Send a file returned for a portability request on to another controller (Art 20(2))."""

    data_request = get_object_or_404(
        DataRightsRequest.objects.select_related("controller", "member__community"),
        reference=reference,
        member__user=request.user,
    )
    problem = forwarding.why_not_forwardable(data_request)
    form = ForwardForm(request.POST if request.method == "POST" else None, data_request=data_request)
    if request.method == "POST" and not problem and form.is_valid():
        try:
            forward = forwarding.received_file_forward(
                file=form.cleaned_data["file"],
                to_controller=form.cleaned_data["to_controller"],
                member=data_request.member,
                actor=Actor(Actor.MEMBER, str(data_request.member_id)),
            )
        except ForwardingError as error:
            # A refusal naming the chosen organisation is about that choice, so it is shown at the field.
            chosen = form.cleaned_data["to_controller"].name in str(error)
            form.add_error("to_controller" if chosen else None, str(error))
        else:
            messages.success(
                request,
                f"We are sending “{forward.file.original_name}” to "
                f"{forward.to_controller.name}. You can follow it here.",
            )
            return redirect("request-detail", reference=reference)
    return render(
        request,
        "communities/request_forward.html",
        {
            "data_request": data_request,
            "community": data_request.member.community,
            "form": form,
            "problem": problem,
        },
    )


def _art15_checklist(data_request: DataRightsRequest) -> dict | None:
    """The Art 15 checklist of an access answer, prefilled with what the controller said it sent."""

    review = completeness.review_for(data_request)
    problem = completeness.why_not_reviewable(data_request)
    if data_request.right not in CHECKLISTS or (problem and review is None):
        return None
    start = (review.present if review.reviewed_at else review.declared) if review else []
    form = ChecklistForm(initial={"present": start}, right=data_request.right)
    form.fields["present"].label = "What their answer contains"
    form.fields["present"].help_text = (
        "Tick each thing you found in what they sent. We will write to them asking "
        "for anything you leave unticked."
    )
    missing = [completeness.item_phrase(item) for item in review.missing] if review else []
    return {"form": form, "review": review, "editable": not problem, "missing": missing}


def _art15_checklist_save(request, data_request: DataRightsRequest):
    """The member's checklist: saved, and a follow-up letter to the controller for anything missing."""

    if problem := completeness.why_not_reviewable(data_request):
        messages.error(request, problem)
        return redirect("request-detail", reference=data_request.reference)
    form = ChecklistForm(request.POST, right=data_request.right)
    if not form.is_valid():
        messages.error(request, "Choose only items from the checklist.")
        return redirect("request-detail", reference=data_request.reference)
    before = completeness.review_for(data_request)
    asked_before = bool(before and before.followup_sent_on)
    name = data_request.controller.name
    try:
        review = completeness.review_save_and_follow_up(
            data_request, form.cleaned_data["present"], Actor(Actor.MEMBER, str(data_request.member_id))
        )
    except RequestEngineError as error:
        messages.error(request, str(error))
        return redirect("request-detail", reference=data_request.reference)
    if not review.missing:
        messages.success(request, f"Saved: {name}'s answer has everything the law asks of it.")
    elif asked_before:
        messages.success(
            request,
            f"Saved. We have already asked {name} for what is missing; they have until "
            f"{long_date(review.followup_due_on)}.",
        )
    else:
        messages.success(
            request,
            f"Saved. We have written to {name} asking for what is missing; they have until "
            f"{long_date(review.followup_due_on)}.",
        )
    return redirect("request-detail", reference=data_request.reference)


@login_required
def received_file(request, file_id: int):
    """A file a controller returned, decrypted for the member it concerns only; each download is an event."""
    received = get_object_or_404(
        ReceivedFile.objects.select_related("request"),
        pk=file_id,
        request__member__user=request.user,
        deleted_at__isnull=True,
    )
    try:
        data = returned_files.received_file_download(
            file_id=received.pk, actor=Actor(Actor.MEMBER, str(received.request.member_id))
        )
    except CryptoError as unreadable:
        # The member gets a page that says what happened; the operator, who can fix the keys, is told.
        operator_alert(
            subject="A returned file could not be decrypted",
            body=f"Received file {received.pk} of request {received.request.reference}: {unreadable}. "
            "Check FIELD_ENCRYPTION_KEYS (a key removed before `rotate_keys` ran?).",
            purpose="operator.file_unreadable",
        )
        return render(request, "communities/file_unreadable.html", {"file": received}, status=503)
    return download(data, name=received.original_name, content_type=received.content_type)


@login_required
def complaint_kit(request, reference: str):
    """The member's kit to complain to the ICO themselves, prepared when the community cannot do it for them."""
    data_request = get_object_or_404(DataRightsRequest, reference=reference, member__user=request.user)
    try:
        data = ico_pack.self_complaint_kit_data(data_request)
    except RequestEngineError as missing:
        raise Http404(str(missing)) from None
    response = HttpResponse(data, content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="ico-complaint-kit-{data_request.reference}.zip"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


@login_required
@require_http_methods(["POST"])
def received_file_keep(request, file_id: int):
    """Keep a returned file past the retention period, or let it go (the member's choice, Art 5(1)(e))."""
    received = get_object_or_404(
        ReceivedFile.objects.select_related("request"),
        pk=file_id,
        request__member__user=request.user,
        deleted_at__isnull=True,
    )
    keep = request.POST.get("keep") == "yes"
    try:
        returned_files.received_file_keep(
            file_id=received.pk, keep=keep, actor=Actor(Actor.MEMBER, str(received.request.member_id))
        )
    except RequestEngineError as error:
        messages.error(request, str(error))
    else:
        name = received.original_name
        messages.success(
            request,
            f"“{name}” is kept: it will not be deleted automatically."
            if keep
            else f"“{name}” will be deleted at the end of the retention period.",
        )
    return redirect("request-detail", reference=received.request.reference)


@login_required
@require_http_methods(["GET", "POST"])
def confirmation(request, token: str):
    """Confirm or decline a campaign's erasure or objection requests (Art 17, Art 21: they cannot be
    undone). Someone else's link is a 404."""
    found = get_object_or_404(
        Confirmation.objects.select_related("campaign__community", "campaign__purpose", "member"),
        token=token,
        member__user=request.user,
    )
    if request.method == "POST":
        choice = request.POST.get("answer")
        if choice not in ("confirm", "decline"):
            messages.error(request, "Choose “Yes, send them” or “No, do not send them”.")
            return redirect("confirmation", token=token)
        try:
            found = campaign_confirmation.confirmation_answer(
                token=token,
                member=found.member,
                confirm=choice == "confirm",
                erasure_at_once=request.POST.get("erasure_at_once") == "yes",
                objection_situation=request.POST.get("objection_situation", ""),
                actor=Actor(Actor.MEMBER, str(found.member_id)),
            )
        except RequestEngineError as error:
            # Shown again with what the member typed, so nothing they wrote is lost.
            messages.error(request, str(error))
            found.objection_situation = request.POST.get("objection_situation", "")
            found.erasure_at_once = request.POST.get("erasure_at_once") == "yes"
            return _confirmation_page(request, found, status=400)
        messages.success(
            request,
            "Thank you: we will send these requests for you."
            if choice == "confirm"
            else "Thank you: we will not send these requests for you.",
        )
        return redirect("confirmation", token=token)
    return _confirmation_page(request, found)


def _confirmation_page(request, found: Confirmation, *, status: int = 200):
    campaign = found.campaign
    return render(
        request,
        "communities/confirmation.html",
        {
            "confirmation": found,
            "campaign": campaign,
            "ask": campaign_confirmation.ask_for(found),
            "sequenced": sequencing.is_sequenced(campaign),
            # An objection to direct marketing needs no particular situation (Art 21(2)-(3) UK GDPR).
            "objects": "objection" in campaign.rights
            and campaign.objection_to != ObjectionTo.DIRECT_MARKETING,
            "open": campaign.state == campaign.State.DRAFT
            and campaign.confirm_by is not None
            and timezone.localdate() <= campaign.confirm_by,
        },
        status=status,
    )
