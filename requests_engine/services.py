"""The request transitions: one function per legal step on a data rights request.

Each action locks its row, checks its preconditions with a clear message, calls the model's transition,
saves, and appends the event in the same transaction. Views, admin, API, tasks and commands call these.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django_fsm import ConcurrentTransition, can_proceed

from core import outbox
from core.audit import Actor
from requests_engine.campaigns.eligibility import require_covered
from requests_engine.events import record_event
from requests_engine.exceptions import RequestEngineError
from requests_engine.grounds import GROUNDS, ground_problem, request_ground_problem
from requests_engine.letters import copied_to
from requests_engine.models import (
    DataRightsRequest,
    InformationKind,
    Outcome,
)
from requests_engine.notices.member import step_notice_send

if TYPE_CHECKING:
    from requests_engine.responses.files import Upload

# Verbs for refusal messages: "Request R1 is fulfilled: it cannot be extended now."
_VERBS = {
    "approve": "approved",
    "dispatch": "sent",
    "fail_delivery": "marked undelivered",
    "requeue": "queued again",
    "acknowledge": "acknowledged",
    "request_information": "put on hold for information",
    "receive_information": "resumed with the information",
    "extend": "extended",
    "fulfil": "marked fulfilled",
    "partially_fulfil": "marked partly fulfilled",
    "refuse": "marked refused",
    "mark_overdue": "marked overdue",
    "complain_to_controller": "taken to a complaint to the controller",
    "escalate_to_ico": "escalated to the ICO",
    "close": "closed",
    "withdraw": "withdrawn",
    "dispute_information": "marked as already supplied",
    "hand_over": "handed over to the member",
}


def _today() -> datetime.date:
    return timezone.localdate()


def _check_date(value: datetime.date, *, name: str, not_before: datetime.date | None = None) -> None:
    if value > _today():
        raise RequestEngineError(f"The {name} ({value:%d %B %Y}) is in the future.")
    if not_before and value < not_before:
        raise RequestEngineError(f"The {name} ({value:%d %B %Y}) is before {not_before:%d %B %Y}.")


def _perform(
    *,
    request_id: int,
    transition: str,
    event: str,
    actor: Actor,
    payload: dict[str, Any] | None = None,
    check: Callable[[DataRightsRequest], None] | None = None,
    **arguments: Any,
) -> DataRightsRequest:
    with transaction.atomic():
        try:
            request = (
                DataRightsRequest.objects.select_for_update().select_related("controller").get(pk=request_id)
            )
        except DataRightsRequest.DoesNotExist:
            raise RequestEngineError(f"There is no request with id {request_id}.") from None
        method = getattr(request, transition)
        if not can_proceed(method, check_conditions=False):
            raise RequestEngineError(
                f"Request {request.reference} is {request.get_state_display().lower()}: "
                f"it cannot be {_VERBS[transition]} now."
            )
        if check:
            check(request)
        if not can_proceed(method):
            raise RequestEngineError(f"Request {request.reference} cannot be {_VERBS[transition]} now.")
        from_state = request.state
        method(**arguments)
        try:
            request.save()
        except ConcurrentTransition:
            raise RequestEngineError(
                f"Request {request.reference} was changed by someone else at the same time; reload and retry."
            ) from None
        record_event(
            subject=request,
            kind=event,
            actor=actor,
            from_state=from_state,
            to_state=request.state,
            payload=payload,
        )
        step_notice_send(request, event)
    return request


def request_approve(*, request_id: int, actor: Actor) -> DataRightsRequest:
    return _perform(request_id=request_id, transition="approve", event="request.approved", actor=actor)


def request_dispatch(
    *,
    request_id: int,
    received_on: datetime.date,
    actor: Actor,
    channel: str = "",
    message_id: str = "",
    expected: bool = False,
) -> DataRightsRequest:
    """The request reached the controller; the statutory month runs from `received_on` (Art 12(3)).
    `expected` allows a delivery date up to a week ahead, for a letter just posted."""
    if expected:
        if received_on > _today() + datetime.timedelta(days=7):
            raise RequestEngineError("An expected delivery date must be within a week.")
    else:
        _check_date(received_on, name="date of receipt")
    return _perform(
        request_id=request_id,
        transition="dispatch",
        event="request.dispatched",
        actor=actor,
        payload={
            "received_on": received_on,
            "channel": channel,
            "message_id": message_id,
            "expected": expected,
        },
        received_on=received_on,
        message_id=message_id,
    )


def request_fail_delivery(*, request_id: int, error: str, actor: Actor) -> DataRightsRequest:
    return _perform(
        request_id=request_id,
        transition="fail_delivery",
        event="request.delivery_failed",
        actor=actor,
        payload={"error": error[:2000]},
        error=error[:2000],
    )


def request_requeue(*, request_id: int, actor: Actor) -> DataRightsRequest:
    # Sent again only while the member's mandate still covers it (DESIGN §2).
    request = DataRightsRequest.objects.select_related("campaign", "controller").get(pk=request_id)
    require_covered(request, doing="send it again")
    return _perform(request_id=request_id, transition="requeue", event="request.requeued", actor=actor)


def request_acknowledge(*, request_id: int, actor: Actor, note: str = "") -> DataRightsRequest:
    return _perform(
        request_id=request_id,
        transition="acknowledge",
        event="request.acknowledged",
        actor=actor,
        payload={"note": note} if note else None,
    )


def request_ask_for_information(
    *, request_id: int, kind: str, question: str, asked_on: datetime.date, actor: Actor
) -> DataRightsRequest:
    """The controller asks for identity, proof of authority, or clarification (RULES.md (c))."""
    if kind not in InformationKind.values:
        raise RequestEngineError(
            f"Unknown kind of information '{kind}': use one of {', '.join(InformationKind.values)}."
        )
    if not question.strip():
        raise RequestEngineError("Say what information is needed.")

    def check(request: DataRightsRequest) -> None:
        _check_date(asked_on, name="date of the question", not_before=request.received_on)

    return _perform(
        request_id=request_id,
        transition="request_information",
        event="request.info_requested",
        actor=actor,
        payload={"information": kind, "question": question, "asked_on": asked_on},
        check=check,
        kind=kind,
        question=question,
        asked_on=asked_on,
    )


def request_give_information(
    *, request_id: int, received_on: datetime.date, actor: Actor, answer: str = ""
) -> DataRightsRequest:
    """The controller has what it asked for: the clock restarts (identity, authority) or resumes
    (clarification), and the due date moves accordingly."""

    def check(request: DataRightsRequest) -> None:
        _check_date(
            received_on,
            name="date the information reached the controller",
            not_before=request.info_requested_on,
        )

    return _perform(
        request_id=request_id,
        transition="receive_information",
        event="request.info_received",
        actor=actor,
        payload={"received_on": received_on, "answer": answer},
        check=check,
        received_on=received_on,
    )


def request_dispute_information(
    *, request_id: int, actor: Actor, already_supplied: bool = True, note: str = ""
) -> DataRightsRequest:
    """The controller asked for proof of identity or authority the request already carried (the sealed
    authority document, verified identifiers): a coordinator or the member marks it "already supplied" (or
    "disputed"), the clock runs on from receipt as before, and the controller is told why."""

    def check(request: DataRightsRequest) -> None:
        if request.info_kind not in (InformationKind.IDENTITY, InformationKind.AUTHORITY):
            raise RequestEngineError(
                "Only a question about identity or authority can be marked as already supplied: a "
                "clarification is answered."
            )

    request = _perform(
        request_id=request_id,
        transition="dispute_information",
        event="request.info_disputed",
        actor=actor,
        payload={"already_supplied": already_supplied, "note": note.strip()},
        check=check,
    )
    transaction.on_commit(lambda: _queue_dispute_email(request.pk, already_supplied, note.strip()))
    return request


def _queue_dispute_email(request_id: int, already_supplied: bool, note: str) -> None:
    _email_controller_about(
        request_id,
        subject="the evidence was supplied with the request",
        template="requests_engine/email/information_disputed.txt",
        purpose="request.information_disputed",
        already_supplied=already_supplied,
        note=note,
    )


def _email_controller_about(
    request_id: int, *, subject: str, template: str, purpose: str, **context: Any
) -> None:
    """A short email to the controller about one request, in reply to its question. Letter and web-form
    controllers have no address: the coordinators write, and the event is on the request."""
    request = DataRightsRequest.objects.select_related("controller", "member__community").get(pk=request_id)
    if not request.controller.email:
        return
    community = request.member.community
    outbox.queue_email(
        to=[request.controller.email],
        cc=copied_to(request.controller),
        reply_to=[community.contact_email],
        subject=f"Re: data rights request {request.reference}: {subject}",
        body_text=render_to_string(template, {"request": request, "community": community, **context}),
        subject_type="request",
        subject_id=str(request.pk),
        purpose=purpose,
    )


def request_answer_from_member(
    *, request_id: int, answer: str, actor: Actor, document: Upload | None = None
) -> DataRightsRequest:
    """The member answers the controller's question through their page: we forward the answer by email,
    and the controller counts as having it today (an accepted email is received that day). To an identity
    question they may add a document, which the controller opens in its portal, never by email."""
    from requests_engine.responses import identity_documents
    from requests_engine.responses.files import files_removed_on_failure

    if not answer.strip():
        raise RequestEngineError("Enter your answer.")
    with files_removed_on_failure(), transaction.atomic():
        if document is not None:
            locked = DataRightsRequest.objects.select_for_update().get(pk=request_id)
            if locked.info_kind != InformationKind.IDENTITY:
                raise RequestEngineError("A document can be added only to an answer about who you are.")
            identity_documents.identity_document_store(request=locked, upload=document, actor=actor)
        request = request_give_information(
            request_id=request_id, received_on=_today(), actor=actor, answer=answer
        )
        with_document = document is not None
        transaction.on_commit(lambda: _queue_answer_email(request.pk, answer, with_document))
    return request


def _queue_answer_email(request_id: int, answer: str, with_document: bool = False) -> None:
    reference = DataRightsRequest.objects.values_list("reference", flat=True).get(pk=request_id)
    _email_controller_about(
        request_id,
        subject="the information you asked for",
        template="requests_engine/email/information_answer.txt",
        purpose="request.information_answer",
        answer=answer,
        with_document=with_document,
        portal_url=settings.SITE_URL.rstrip("/") + reverse("portal-request", args=[reference]),
    )


def request_extend(
    *, request_id: int, months: int, reason: str, actor: Actor, noticed_on: datetime.date | None = None
) -> DataRightsRequest:
    """Art 12(3)/12A UK GDPR: once, by up to two further months, with reasons, noticed within the first
    month (the one-month deadline, as moved by any pause)."""
    noticed_on = noticed_on or _today()
    if isinstance(months, bool) or months not in (1, 2):
        raise RequestEngineError("An extension is one or two further months (Art 12(3) UK GDPR).")
    if not reason.strip():
        raise RequestEngineError("An extension must state its reasons (Art 12(3) UK GDPR).")

    def check(request: DataRightsRequest) -> None:
        _check_date(noticed_on, name="date of the extension notice", not_before=request.received_on)
        if request.extension_months:
            raise RequestEngineError(
                f"Request {request.reference} was already extended once; it cannot be extended again."
            )
        if request.due_on is None or noticed_on > request.due_on:
            raise RequestEngineError(
                f"Request {request.reference} was due on {request.due_on:%d %B %Y}: an extension must be "
                "given before the deadline."
            )

    return _perform(
        request_id=request_id,
        transition="extend",
        event="request.extended",
        actor=actor,
        payload={"months": months, "reason": reason, "noticed_on": noticed_on},
        check=check,
        months=months,
        reason=reason,
        noticed_on=noticed_on,
    )


def request_fulfil(
    *,
    request_id: int,
    actor: Actor,
    note: str = "",
    recipients_told: str = "",
    answered_on: datetime.date | None = None,
) -> DataRightsRequest:
    """The controller did what was asked. With an erasure, `recipients_told` is its Art 19 statement: whom
    it told of the erasure, or that there was no one (the controller's own surfaces require it)."""
    answered_on = answered_on or _today()
    _check_date(answered_on, name="date of the answer")
    payload: dict[str, Any] = {"note": note, "answered_on": answered_on}
    if recipients_told.strip():
        payload["recipients_told"] = recipients_told.strip()
    return _perform(
        request_id=request_id,
        transition="fulfil",
        event="request.fulfilled",
        actor=actor,
        payload=payload,
        answered_on=answered_on,
        statement=note.strip(),  # the controller's note for the member: shown and emailed to them
        recipients_told=recipients_told.strip(),
    )


def request_confirm_no_data(
    *, request_id: int, searches: str, actor: Actor, answered_on: datetime.date | None = None
) -> DataRightsRequest:
    """The controller confirms it holds no personal data of the member: an answer (Art 15(1) UK GDPR asks
    for confirmation whether data is processed), counted on time or late like any other, never a refusal.
    It says what it searched (Art 15(1A): a reasonable and proportionate search)."""
    searches = searches.strip()
    if not searches:
        raise RequestEngineError(
            "Say what you searched, and under which identifiers (Art 15(1A) UK GDPR: a reasonable and "
            "proportionate search)."
        )
    answered_on = answered_on or _today()
    _check_date(answered_on, name="date of the answer")
    return _perform(
        request_id=request_id,
        transition="fulfil",
        event="request.no_data_held",
        actor=actor,
        payload={"searches": searches, "answered_on": answered_on},
        answered_on=answered_on,
        outcome=Outcome.NO_DATA_HELD,
        statement=searches,
    )


def _check_refusal(ground: str, reasons: str) -> None:
    """A ground the law gives (grounds.py; RULES.md (d)) and reasons (Art 12(4)); `_ground_fits` then
    checks the ground against the request's right, under its lock."""
    if ground not in GROUNDS:
        raise RequestEngineError(ground_problem(ground, ""))
    if not reasons.strip():
        # Art 12(4) UK GDPR: a controller that does not act must give its reasons.
        raise RequestEngineError("A refusal must give its reasons (Art 12(4) UK GDPR).")


def _ground_fits(ground: str) -> Callable[[DataRightsRequest], None]:
    def check(request: DataRightsRequest) -> None:
        if problem := request_ground_problem(ground, request):
            raise RequestEngineError(problem)

    return check


def request_partially_fulfil(
    *, request_id: int, ground: str, reasons: str, actor: Actor, answered_on: datetime.date | None = None
) -> DataRightsRequest:
    _check_refusal(ground, reasons)
    answered_on = answered_on or _today()
    _check_date(answered_on, name="date of the answer")
    return _perform(
        request_id=request_id,
        transition="partially_fulfil",
        event="request.partially_fulfilled",
        actor=actor,
        payload={"ground": ground, "reasons": reasons, "answered_on": answered_on},
        answered_on=answered_on,
        ground=ground,
        reasons=reasons,
        check=_ground_fits(ground),
    )


def request_refuse(
    *, request_id: int, ground: str, reasons: str, actor: Actor, answered_on: datetime.date | None = None
) -> DataRightsRequest:
    _check_refusal(ground, reasons)
    answered_on = answered_on or _today()
    _check_date(answered_on, name="date of the answer")
    return _perform(
        request_id=request_id,
        transition="refuse",
        event="request.refused",
        actor=actor,
        payload={"ground": ground, "reasons": reasons, "answered_on": answered_on},
        answered_on=answered_on,
        ground=ground,
        reasons=reasons,
        check=_ground_fits(ground),
    )


def request_mark_overdue(*, request_id: int, actor: Actor | None = None) -> DataRightsRequest:
    def check(request: DataRightsRequest) -> None:
        if not request.deadline_has_passed():
            due = f"{request.due_on:%d %B %Y}" if request.due_on else "not running"
            raise RequestEngineError(f"Request {request.reference} is not overdue: its deadline is {due}.")

    return _perform(
        request_id=request_id,
        transition="mark_overdue",
        event="request.overdue",
        actor=actor or Actor.system("sweep"),
        check=check,
    )


def request_escalate_to_ico(*, request_id: int, actor: Actor, case_reference: str = "") -> DataRightsRequest:
    return _perform(
        request_id=request_id,
        transition="escalate_to_ico",
        event="request.escalated_to_ico",
        actor=actor,
        payload={"case_reference": case_reference} if case_reference else None,
    )


def request_close(*, request_id: int, actor: Actor, outcome: str = "") -> DataRightsRequest:
    return _perform(
        request_id=request_id,
        transition="close",
        event="request.closed",
        actor=actor,
        payload={"outcome": outcome} if outcome else None,
        closed_on=_today(),
    )


def request_hand_over(*, request_id: int, actor: Actor, answer_to: str, reason: str) -> DataRightsRequest:
    """The community stops acting on this request; it stands as the member's own, to be answered to them
    at `answer_to`. The controller is told by the caller (dispatch/withdrawals.py), after commit."""
    answer_to = " ".join(answer_to.split())
    if not answer_to:
        raise RequestEngineError("Say where the organisation should answer the member.")
    return _perform(
        request_id=request_id,
        transition="hand_over",
        event="request.handed_over",
        actor=actor,
        payload={"answer_to": answer_to, "reason": reason},
        answer_to=answer_to,
        handed_over_on=_today(),
    )


def request_withdraw(*, request_id: int, actor: Actor, reason: str = "") -> DataRightsRequest:
    return _perform(
        request_id=request_id,
        transition="withdraw",
        event="request.withdrawn",
        actor=actor,
        payload={"reason": reason} if reason else None,
        withdrawn_on=_today(),
    )
