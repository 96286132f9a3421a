"""A controller's answer to a request: the one path every surface takes (portal, API, bulk CSV and ZIP).

The surfaces validate their input and name an action from `ACTIONS`; `request_answer` does the rest in one
transaction: the returned files stored encrypted, the transition, the Art 15 items an access answer
declares. If any of it fails, the transaction rolls back and the files stored meanwhile are removed, so a
refused answer leaves neither a changed request nor an orphaned file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django_fsm import can_proceed

from communities.models import Right
from core.audit import Actor
from requests_engine import services
from requests_engine.events import record_event
from requests_engine.exceptions import (
    Art15ItemsRefused,
    RequestEngineError,
    StatementMissing,
    UploadRefused,
)
from requests_engine.models import DataRightsRequest, ErasureItem, RequestState
from requests_engine.notices.member import files_notice_send
from requests_engine.responses import completeness
from requests_engine.responses import files as returned_files
from requests_engine.responses.files import Upload

# A controller sees a request once it has been sent; drafts and queued requests are ours alone.
HIDDEN_STATES = [RequestState.DRAFT, RequestState.QUEUED]


@dataclass(frozen=True)
class AnswerAction:
    """One thing a controller can do with a request, by the model transition it runs."""

    name: str  # in CSV lines and bulk forms
    label: str
    transition: str
    slug: str  # in portal URLs
    api_step: str  # in API URLs (`/requests/<reference>/<step>/`)
    takes_files: bool = False


ACTIONS: dict[str, AnswerAction] = {
    action.name: action
    for action in (
        AnswerAction("acknowledge", "Acknowledge", "acknowledge", "acknowledge", "acknowledge"),
        AnswerAction("ask", "Ask for information", "request_information", "ask", "request-information"),
        AnswerAction("extend", "Extend", "extend", "extend", "extend"),
        AnswerAction("fulfil", "Fulfil", "fulfil", "fulfil", "fulfil", takes_files=True),
        AnswerAction("no_data", "No personal data held", "fulfil", "no-data", "no-data-held"),
        AnswerAction(
            "partially_fulfil",
            "Partly fulfil",
            "partially_fulfil",
            "partially-fulfil",
            "partially-fulfil",
            takes_files=True,
        ),
        AnswerAction("refuse", "Refuse", "refuse", "refuse", "refuse"),
    )
}
# What people write in a CSV for the same actions.
_SPELLINGS = {
    "partly_fulfil": "partially_fulfil",
    "fulfill": "fulfil",
    "request_information": "ask",
    "no_data_held": "no_data",
    "no_personal_data_held": "no_data",
}


def action_named(text: str) -> AnswerAction:
    """The action a CSV line or form names, however it is written ("Partly fulfil", "partially-fulfil")."""
    name = text.strip().lower().replace("-", "_").replace(" ", "_")
    action = ACTIONS.get(_SPELLINGS.get(name, name))
    if action is None:
        raise RequestEngineError(f"unknown action “{text}”: use {', '.join(ACTIONS)}.")
    return action


def action_by_slug(slug: str) -> AnswerAction | None:
    return next((action for action in ACTIONS.values() if action.slug == slug), None)


def actions_allowed(request: DataRightsRequest) -> list[AnswerAction]:
    """The answers the request's state allows now: surfaces offer only these (a stale page that posts
    another is refused by the transition, with a message)."""
    return [action for action in ACTIONS.values() if can_proceed(getattr(request, action.transition))]


def requests_for_controller(controller_id: int) -> QuerySet[DataRightsRequest]:
    """The only way into requests for a controller: its own, once sent to it. Another controller's request
    is then missing, like one that does not exist."""
    return DataRightsRequest.objects.filter(controller_id=controller_id).exclude(state__in=HIDDEN_STATES)


def request_answer(
    *,
    request_id: int,
    action: str,
    actor: Actor,
    uploads: Sequence[Upload] = (),
    note: str = "",
    ground: str = "",
    reasons: str = "",
    months: int | None = None,
    kind: str = "",
    question: str = "",
    art15_items: Sequence[str] | None = None,
    searches: str = "",
    recipients_told: str = "",
) -> DataRightsRequest:
    """Answer a request as the controller: `action` is a name from ACTIONS. Files go only with fulfil or
    partially_fulfil; `art15_items` (None: not given) says which Art 15 items an access answer provides.

    An access or portability request is fulfilled only with the data (or answered "no personal data held",
    action no_data, saying what was searched); portability only with machine-readable data; an erasure only
    with `recipients_told`, whom the controller told of it or that there was no one (Art 19).

    Raises UploadRefused for a refused file or a fulfilment without the data it claims, Art15ItemsRefused for items that cannot be recorded, and
    RequestEngineError when the request's state or the answer's content does not allow it. The member is
    told of the answer and its files after commit."""
    chosen = ACTIONS.get(action)
    if chosen is None:
        raise RequestEngineError(f"unknown action “{action}”: use {', '.join(ACTIONS)}.")
    if uploads and not chosen.takes_files:
        raise RequestEngineError(f"Files go only with fulfil or partially_fulfil, not with {chosen.name}.")
    # Storage is outside the transaction: the files are removed if anything inside it fails, including an
    # enclosing transaction (bulk answers) that rolls back later.
    with returned_files.files_removed_on_failure(), transaction.atomic():
        request = (
            DataRightsRequest.objects.select_for_update()
            .select_related("member__community")
            .get(pk=request_id)
        )
        if chosen.takes_files:
            _check_answerable(request, chosen)
        if chosen.name == "fulfil":
            _check_fulfilment(request, list(uploads), recipients_told=recipients_told)
        stored = _files_stored(request, chosen, list(uploads), actor, ground=ground, reasons=reasons)
        request = _transition(
            chosen,
            request_id=request_id,
            actor=actor,
            note=note,
            ground=ground,
            reasons=reasons,
            months=months,
            kind=kind,
            question=question,
            searches=searches,
            recipients_told=recipients_told,
        )
        if chosen.takes_files:
            _flag_unstructured_portability(request, stored)
            _declare_items(request, _items_declared(request, art15_items, recipients_told), actor)
        if stored:
            transaction.on_commit(lambda: _tell_member_of_files(request.pk))
    return request


def _files_stored(
    request: DataRightsRequest,
    action: AnswerAction,
    uploads: list[Upload],
    actor: Actor,
    *,
    ground: str,
    reasons: str,
) -> list:
    """The files checked and stored, after the cheap checks that would refuse the answer anyway."""
    if not uploads:
        return []
    if action.name == "partially_fulfil":
        services._check_refusal(ground, reasons)
    return returned_files.received_files_store(request=request, uploads=uploads, actor=actor)


def _check_fulfilment(request: DataRightsRequest, uploads: list[Upload], *, recipients_told: str) -> None:
    """A fulfilment has what it claims: the data for access (Art 15(1), (3)) and portability (Art 20(1)),
    and for portability in a structured, commonly used and machine-readable format (RULES.md (g)); an
    erasure says whom it was passed on to (Art 19; RULES.md (h))."""
    if request.right == Right.ERASURE and not recipients_told.strip():
        raise StatementMissing(
            "Say whom you told of the erasure (Art 19 UK GDPR: each recipient the data was disclosed to), "
            "or that the data was disclosed to no one.",
            field="recipients_told",
        )
    if request.right not in (Right.ACCESS, Right.PORTABILITY):
        return
    if not uploads:
        raise UploadRefused(
            f"An answer to {request.get_right_display()} needs the data: attach at least one file, or answer "
            "“No personal data held” if you hold none."
        )
    if request.right == Right.PORTABILITY:
        kinds = {returned_files.check_upload(u)[1] for u in uploads}
        if not kinds & (returned_files.MACHINE_READABLE | {"application/zip"}):
            raise UploadRefused(
                "Portability (Art 20(1) UK GDPR) needs the data in a structured, machine-readable format: "
                "send JSON, CSV, XML or a spreadsheet (a ZIP of them is fine). A PDF or an image alone "
                "cannot be read by another service."
            )


def _check_answerable(request: DataRightsRequest, action: AnswerAction) -> None:
    if not can_proceed(getattr(request, action.transition), check_conditions=False):
        raise RequestEngineError(
            f"Request {request.reference} is {request.get_state_display().lower()}: it cannot be answered now."
        )


def _transition(
    action: AnswerAction,
    *,
    request_id: int,
    actor: Actor,
    note: str,
    ground: str,
    reasons: str,
    months: int | None,
    kind: str,
    question: str,
    searches: str,
    recipients_told: str,
) -> DataRightsRequest:
    if action.name == "acknowledge":
        return services.request_acknowledge(request_id=request_id, actor=actor, note=note)
    if action.name == "ask":
        return services.request_ask_for_information(
            request_id=request_id, actor=actor, kind=kind, question=question, asked_on=timezone.localdate()
        )
    if action.name == "extend":
        if months is None:
            raise RequestEngineError("An extension is one or two further months (Art 12(3) UK GDPR).")
        return services.request_extend(request_id=request_id, actor=actor, months=months, reason=reasons)
    if action.name == "fulfil":
        return services.request_fulfil(
            request_id=request_id, actor=actor, note=note, recipients_told=recipients_told
        )
    if action.name == "no_data":
        return services.request_confirm_no_data(request_id=request_id, actor=actor, searches=searches or note)
    if action.name == "partially_fulfil":
        return services.request_partially_fulfil(
            request_id=request_id, actor=actor, ground=ground, reasons=reasons
        )
    return services.request_refuse(request_id=request_id, actor=actor, ground=ground, reasons=reasons)


def _flag_unstructured_portability(request: DataRightsRequest, stored: list) -> None:
    """Art 20(1) UK GDPR: portable data comes "in a structured, commonly used and machine-readable format";
    an answer with none such is flagged to the coordinators."""
    if (
        request.right == Right.PORTABILITY
        and stored
        and not returned_files.portability_answer_is_structured(stored)
    ):
        record_event(
            subject=request,
            kind="request.portability_format_flagged",
            actor=Actor.system(),
            payload={"types": sorted({f.content_type for f in stored})},
        )


def _items_declared(
    request: DataRightsRequest, art15_items: Sequence[str] | None, recipients_told: str
) -> Sequence[str] | None:
    """What the answer says it provides: the Art 15 items an access answer lists; for an erasure, the erasure
    and its Art 19 statement."""
    if art15_items:  # refused below unless the request is for access
        return art15_items
    if request.right == Right.ERASURE and request.state == RequestState.FULFILLED and recipients_told.strip():
        return [ErasureItem.ERASED, ErasureItem.RECIPIENTS_TOLD]
    return art15_items


def _declare_items(request: DataRightsRequest, items: Sequence[str] | None, actor: Actor) -> None:
    """The answer records the checklist items the controller says it provides (an empty list: none).
    Items that do not belong to the request's checklist are refused, in the words of the completeness check."""
    if items is None or (not items and request.right != Right.ACCESS):
        return
    try:
        completeness.items_declare(request, items, actor)
    except RequestEngineError as error:
        raise Art15ItemsRefused(str(error)) from None


def _tell_member_of_files(request_id: int) -> None:
    """Files the answer's own notice did not cover (it names those stored with it)."""

    with transaction.atomic():
        request = (
            DataRightsRequest.objects.select_for_update()
            .select_related("member__user", "member__community", "controller")
            .get(pk=request_id)
        )
        files_notice_send(request)
