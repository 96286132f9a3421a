"""The response portal: a controller's contact signs in by emailed link and answers the requests addressed
to that controller, one by one or in bulk. Every action is one service call; another controller's request
is a 404, whatever the URL."""

from __future__ import annotations

import csv
import io
from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from communities.documents import authority_filename
from core.audit import Actor
from core.downloads import download
from requests_engine.authorities import authority_issue
from requests_engine.events import describe
from requests_engine.exceptions import BulkAnswersRefused, RequestEngineError, StatementMissing
from requests_engine.letters import disclosed_identifier_rows
from requests_engine.models import DataRightsRequest, RequestEvent
from requests_engine.portal import forms, signin
from requests_engine.responses import answers, identity_documents
from requests_engine.responses import bulk as bulk_answers
from requests_engine.responses.files import Upload

PAGE_SIZE = 50


def contact_required(view):
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        contact = signin.current_contact(request)
        if contact is None:
            return redirect("portal-home")
        request.contact = contact
        return view(request, *args, **kwargs)

    return wrapper


def _actor(request) -> Actor:
    return Actor(Actor.CONTROLLER, str(request.contact.pk))


def _requests_for(contact):
    return answers.requests_for_controller(contact.controller_id)


def _own_request(request, reference: str) -> DataRightsRequest:
    return get_object_or_404(
        _requests_for(request.contact).select_related("member__community", "mandate", "campaign"),
        reference=reference,
    )


@require_http_methods(["GET", "POST"])
def home(request):
    if signin.current_contact(request):
        return redirect("portal-requests")
    form = forms.EmailForm(request.POST if request.method == "POST" else None)
    sent = False
    if request.method == "POST" and form.is_valid():
        if not signin.ask_for_sign_in_link(request, email=form.cleaned_data["email"]):
            return render(
                request, "requests_engine/portal/home.html", {"form": form, "too_many": True}, status=429
            )
        sent = True  # the same answer whether or not the address is known
    return render(request, "requests_engine/portal/home.html", {"form": form, "sent": sent})


@require_http_methods(["GET", "POST"])
def sign_in(request, token: str):
    if request.method == "POST":
        contact = signin.redeem(token)
        if contact is None:
            return render(request, "requests_engine/portal/link_invalid.html", status=410)
        signin.start_session(request, contact)
        messages.success(request, f"Signed in as {contact.email} for {contact.controller.name}.")
        return redirect("portal-requests")
    if not signin.link_is_usable(token):
        return render(request, "requests_engine/portal/link_invalid.html", status=410)
    return render(request, "requests_engine/portal/confirm.html", {"token": token})


@require_POST
def sign_out(request):
    signin.end_session(request)
    messages.success(request, "You are signed out.")
    return redirect("portal-home")


@contact_required
def request_list(request):
    contact = request.contact
    filters = forms.FilterForm(request.GET or None)
    rows = _requests_for(contact)
    if filters.is_valid():
        data = filters.cleaned_data
        if data["state"]:
            rows = rows.filter(state=data["state"])
        if data["right"]:
            rows = rows.filter(right=data["right"])
        if data["campaign"]:
            rows = rows.filter(campaign__reference=data["campaign"].strip().upper())
        if data["due_before"]:
            rows = rows.filter(due_on__lte=data["due_before"])
    # Two steps, as the API list does: the page's ids from the requests table alone (the controller's
    # (due_on, id) index, no join), then those fifty rows with their member's name. Joining first would
    # join every request before the offset of a deep page.
    page = Paginator(rows.order_by("due_on", "pk").values_list("pk", flat=True), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    shown = (
        DataRightsRequest.objects.filter(pk__in=list(page))
        .select_related("member")
        .only("reference", "right", "state", "due_on", "clock_paused", "member__full_name")
    )
    by_id = {row.pk: row for row in shown}
    page.object_list = [by_id[pk] for pk in page.object_list]
    today = timezone.localdate()
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "requests_engine/portal/list.html",
        {
            "contact": contact,
            "filters": filters,
            "page": page,
            "today": today,
            "query": query.urlencode(),
            "bulk": forms.BulkForm(references=[r.reference for r in page]),
            "csv_form": forms.CsvForm(),
        },
    )


def _detail_context(request, data_request) -> dict:
    """What the request page shows: the same identifiers and authority document the letters carry, nothing
    more (Art 5(1)(c) UK GDPR)."""
    events = [
        {"event": e, "sentence": describe(e)}
        for e in RequestEvent.objects.filter(request=data_request).order_by("seq")
    ]
    identifiers = disclosed_identifier_rows(data_request.controller, [data_request.member_id]).get(
        data_request.member_id, []
    )
    return {
        "contact": request.contact,
        "r": data_request,
        "events": events,
        "identifiers": identifiers,
        "authority": authority_issue(mandate=data_request.mandate, controller=data_request.controller),
        "identity_documents": data_request.identity_documents.filter(deleted_at__isnull=True),
        "ask": forms.AskForm(),
        "extend": forms.ExtendForm(),
        "fulfil": forms.FulfilForm(),
        "nodata": forms.NoDataForm(),
        "refuse": forms.RefuseForm(**_grounds_of(data_request)),
        "partial": forms.PartialForm(**_grounds_of(data_request)),
        "days_left": data_request.days_left(),
        "allowed": _allowed_actions(data_request),
    }


@contact_required
def request_detail(request, reference: str):
    data_request = _own_request(request, reference)
    return render(request, "requests_engine/portal/detail.html", _detail_context(request, data_request))


def _grounds_of(data_request) -> dict:
    """What the refusal forms need to offer only the grounds that fit this request (grounds.py)."""
    return {"right": data_request.right, "direct_marketing": data_request.objects_to_direct_marketing}


def _allowed_actions(data_request) -> set[str]:
    """The portal slugs of the answers the request's state allows now: the page offers only these."""
    return {action.slug for action in answers.actions_allowed(data_request)}


@contact_required
def authority_pdf(request, reference: str):
    """The member's authority document for this controller: never the full mandate, which names others."""
    data_request = _own_request(request, reference)
    authority = authority_issue(mandate=data_request.mandate, controller=data_request.controller)
    return FileResponse(
        authority.pdf.open("rb"),
        as_attachment=True,
        filename=authority_filename(authority),
        content_type="application/pdf",
    )


@contact_required
def identity_document(request, reference: str, document_id: int):
    """A document the member uploaded to show who they are: only to this controller, each view an event."""
    data_request = _own_request(request, reference)
    document = get_object_or_404(
        data_request.identity_documents.filter(deleted_at__isnull=True), pk=document_id
    )
    data = identity_documents.identity_document_view(document=document, actor=_actor(request))
    return download(data, name=document.original_name, content_type=document.content_type)


def _uploads(files) -> list[Upload]:
    return [Upload(name=f.name, data=f) for f in files]


# The form each portal action takes (acknowledging takes none).
ACTION_FORMS = {
    "ask": forms.AskForm,
    "extend": forms.ExtendForm,
    "fulfil": forms.FulfilForm,
    "no_data": forms.NoDataForm,
    "partially_fulfil": forms.PartialForm,
    "refuse": forms.RefuseForm,
}


@contact_required
@require_POST
def act(request, reference: str, action: str):
    data_request = _own_request(request, reference)
    chosen = answers.action_by_slug(action)
    if chosen is None:
        raise Http404
    form_class = ACTION_FORMS.get(chosen.name)
    extra = _grounds_of(data_request) if form_class in (forms.RefuseForm, forms.PartialForm) else {}
    form = form_class(request.POST, request.FILES, **extra) if form_class else None
    if form is not None and not form.is_valid():
        return _detail_with_error(request, data_request, action, form)
    data = form.cleaned_data if form is not None else {}
    # An answer form's Art 15 checklist, ticked or not, is the controller's declaration (None: not asked).
    items = data.get("art15_items") if form is not None and "art15_items" in form.fields else None
    try:
        answers.request_answer(
            request_id=data_request.pk,
            action=chosen.name,
            actor=_actor(request),
            uploads=_uploads(data.get("files") or []),
            note=data.get("note", ""),
            ground=data.get("ground", ""),
            reasons=data.get("reasons") or data.get("reason", ""),
            months=data.get("months"),
            kind=data.get("kind", ""),
            question=data.get("question", ""),
            art15_items=items,
            searches=data.get("searches", ""),
            recipients_told=data.get("recipients_told", ""),
        )
    except StatementMissing as missing:
        assert form is not None  # only a fulfil form's answer lacks a statement
        form.add_error(missing.field, str(missing))
        return _detail_with_error(request, data_request, action, form)
    except RequestEngineError as error:
        if form is None:
            messages.error(request, str(error))
            return redirect("portal-request", reference=reference)
        form.add_error(None, str(error))
        return _detail_with_error(request, data_request, action, form)
    messages.success(request, _done(chosen.name, data_request))
    return redirect("portal-request", reference=reference)


def _done(action: str, data_request) -> str:
    """What happened, in a sentence (a bare "done" tells the controller nothing)."""
    name, ref = data_request.member.full_name, data_request.reference
    return {
        "acknowledge": f"Acknowledged request {ref}; {name} is told it is being handled.",
        "ask": f"Your question was sent to {name}; request {ref} waits for the answer.",
        "extend": f"Extended request {ref}; {name} is told the new date and your reasons.",
        "fulfil": f"Sent {name}'s answer to them; request {ref} is answered.",
        "no_data": f"Told {name} that you hold no personal data of theirs; request {ref} is answered.",
        "partially_fulfil": f"Sent what you provide to {name}, with your reasons for the rest; request {ref} "
        "is answered in part.",
        "refuse": f"Your refusal and reasons were sent to {name}; request {ref} is refused.",
    }.get(action, f"Request {ref}: done.")


def _detail_with_error(request, data_request, action, form):
    key = {
        "ask": "ask",
        "extend": "extend",
        "fulfil": "fulfil",
        "no-data": "nodata",
        "refuse": "refuse",
        "partially-fulfil": "partial",
    }[action]
    context = {**_detail_context(request, data_request), key: form, "open_action": action}
    return render(request, "requests_engine/portal/detail.html", context, status=400)


@contact_required
@require_POST
def bulk(request):
    references = request.POST.getlist("references")
    form = forms.BulkForm(request.POST, references=references)
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, str(error))
        return redirect("portal-requests")
    rows = dict(
        _requests_for(request.contact)
        .filter(reference__in=form.cleaned_data["references"])
        .values_list("reference", "pk")
    )
    done, failed = 0, []
    for reference in form.cleaned_data["references"]:
        if reference not in rows:
            failed.append(f"{reference}: not one of your requests")
            continue
        try:
            answers.request_answer(
                request_id=rows[reference],
                action=form.cleaned_data["action"],
                actor=_actor(request),
                months=form.cleaned_data["months"],
                reasons=form.cleaned_data["reason"],
                ground=form.cleaned_data["ground"],
            )
            done += 1
        except RequestEngineError as error:
            failed.append(str(error))
    _report(request, done, failed)
    return redirect("portal-requests")


def _report(request, done: int, failed: list[str]) -> None:
    if done:
        messages.success(request, f"{done} request(s) updated.")
    for problem in failed[:20]:
        messages.error(request, problem)
    if len(failed) > 20:
        messages.error(request, f"… and {len(failed) - 20} more problems.")


@contact_required
@require_POST
def csv_upload(request):
    form = forms.CsvForm(request.POST, request.FILES)
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, str(error))
        return redirect("portal-requests")
    zipped = form.cleaned_data["answers_zip"]
    if not form.cleaned_data["csv_file"]:
        return _answers_from_zip(request, zipped, rows=None)
    try:
        text = form.cleaned_data["csv_file"].read().decode("utf-8-sig")
        rows = list(csv.DictReader(io.StringIO(text)))
    except (UnicodeDecodeError, csv.Error):
        messages.error(request, "The file is not a readable UTF-8 CSV file.")
        return redirect("portal-requests")
    if not rows or "reference" not in rows[0] or "action" not in rows[0]:
        messages.error(request, "The CSV needs a header row with at least the columns reference and action.")
        return redirect("portal-requests")
    if zipped:
        return _answers_from_zip(request, zipped, rows=rows)
    own = dict(
        _requests_for(request.contact)
        .filter(reference__in=[r.get("reference", "").strip() for r in rows])
        .values_list("reference", "pk")
    )
    done, failed = 0, []
    for line, row in enumerate(rows, start=2):
        reference = (row.get("reference") or "").strip()
        if reference not in own:
            failed.append(f"Line {line}: {reference or '(no reference)'} is not one of your requests.")
            continue
        try:
            bulk_answers.row_answer(request_id=own[reference], row=row, actor=_actor(request))
            done += 1
        except RequestEngineError as error:
            failed.append(f"Line {line}: {error}")
    _report(request, done, failed)
    return redirect("portal-requests")


def _answers_from_zip(request, zipped, *, rows):
    """A ZIP of a folder per request, perhaps with the CSV: all applied or none, and a page saying which."""
    context = {"contact": request.contact, "name": zipped.name}
    if zipped.size > settings.UPLOAD_MAX_BYTES:  # refused before reading it into memory
        context["problems"] = [
            f"“{zipped.name}” is larger than the {settings.UPLOAD_MAX_BYTES // 2**20} MB allowed."
        ]
        return render(request, "requests_engine/portal/bulk_answers.html", context, status=400)
    try:
        context["answers"] = bulk_answers.answers_apply(
            controller_id=request.contact.controller_id,
            archive=Upload(name=zipped.name, data=zipped),
            rows=rows,
            actor=_actor(request),
        )
    except BulkAnswersRefused as refused:
        context["problems"] = refused.problems
        return render(request, "requests_engine/portal/bulk_answers.html", context, status=400)
    return render(request, "requests_engine/portal/bulk_answers.html", context)
