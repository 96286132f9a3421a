"""Business actions on controllers, campaigns and requests: one function per legal step.

Each action locks its row, checks its preconditions with a clear message, calls the model's transition,
saves, and appends the event in the same transaction. Views, admin, API, tasks and commands call these.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

from django.db import connection, transaction
from django.utils import timezone
from django_fsm import ConcurrentTransition, can_proceed

from communities.models import Mandate, Member, Right
from core.audit import Actor, event_digest, timestamp_text

from .events import record_event
from .member_notices import tell_member_of_step
from .models import (
    CLOCK_STATES,
    Batch,
    Campaign,
    DataRightsRequest,
    InformationKind,
    RefusalGround,
    RequestEvent,
    RequestState,
)


class RequestEngineError(Exception):
    """An action was refused: the message says why, in words a coordinator or controller understands."""


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
        tell_member_of_step(request, event)
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


def request_answer_from_member(*, request_id: int, answer: str, actor: Actor) -> DataRightsRequest:
    """The member answers the controller's question through their page: we forward the answer by email,
    and the controller counts as having it today (an accepted email is received that day)."""
    if not answer.strip():
        raise RequestEngineError("Enter your answer.")
    with transaction.atomic():
        request = request_give_information(
            request_id=request_id, received_on=_today(), actor=actor, answer=answer
        )
        transaction.on_commit(lambda: _queue_answer_email(request.pk, answer))
    return request


def _queue_answer_email(request_id: int, answer: str) -> None:
    from django.template.loader import render_to_string

    from core import outbox

    request = DataRightsRequest.objects.select_related("controller", "member__community").get(pk=request_id)
    if not request.controller.email:
        return  # letter and web-form controllers: the coordinator forwards it (visible in the history)
    community = request.member.community
    outbox.queue_email(
        to=[request.controller.email],
        reply_to=[community.contact_email],
        subject=f"Re: data rights request {request.reference}: the information you asked for",
        body_text=render_to_string(
            "requests_engine/email/information_answer.txt",
            {"request": request, "community": community, "answer": answer},
        ),
        subject_type="request",
        subject_id=str(request.pk),
        purpose="request.information_answer",
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
    *, request_id: int, actor: Actor, note: str = "", answered_on: datetime.date | None = None
) -> DataRightsRequest:
    answered_on = answered_on or _today()
    _check_date(answered_on, name="date of the answer")
    return _perform(
        request_id=request_id,
        transition="fulfil",
        event="request.fulfilled",
        actor=actor,
        payload={"note": note, "answered_on": answered_on},
        answered_on=answered_on,
    )


def _check_refusal(ground: str, reasons: str) -> None:
    if ground not in RefusalGround.values:
        raise RequestEngineError(
            f"Unknown legal ground '{ground}': use one of {', '.join(RefusalGround.values)}."
        )
    if not reasons.strip():
        # Art 12(4) UK GDPR: a controller that does not act must give its reasons.
        raise RequestEngineError("A refusal must give its reasons (Art 12(4) UK GDPR).")


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


def request_complain_to_controller(*, request_id: int, actor: Actor) -> DataRightsRequest:
    return _perform(
        request_id=request_id,
        transition="complain_to_controller",
        event="request.complaint_to_controller",
        actor=actor,
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


def request_withdraw(*, request_id: int, actor: Actor, reason: str = "") -> DataRightsRequest:
    return _perform(
        request_id=request_id,
        transition="withdraw",
        event="request.withdrawn",
        actor=actor,
        payload={"reason": reason} if reason else None,
        withdrawn_on=_today(),
    )


# -- campaigns ---------------------------------------------------------------------------------------------

RIGHT_CODES = {
    Right.ACCESS: "AC",
    Right.PORTABILITY: "PO",
    Right.ERASURE: "ER",
    Right.OBJECTION: "OB",
    Right.RECTIFICATION: "RE",
    Right.RESTRICTION: "RS",
}


def _mandate_has_right_sql() -> str:
    if connection.vendor == "postgresql":
        return "md.rights @> jsonb_build_array(%s::text)"
    return "EXISTS (SELECT 1 FROM json_each(md.rights) WHERE json_each.value = %s)"


def _expand_requests(*, campaign: Campaign, right: str, today: datetime.date, now: datetime.datetime) -> int:
    """INSERT … SELECT one queued request per eligible member × batch for one right: set-based, so a
    campaign of 100k members × 10 controllers costs about what the bare insert costs. Eligible = an active,
    unexpired mandate covering the right and the controller. A member has at most one active mandate and a
    campaign launches once (under its row lock), so no row can conflict; the unique constraint still guards."""
    r = DataRightsRequest._meta.db_table
    sql = f"""
        INSERT INTO {r} (reference, campaign_id, batch_id, member_id, mandate_id, controller_id, "right",
            state, extension_months, extension_reason, paused_days, clock_paused, info_kind, info_question,
            message_id, delivery_error, drp_request_id, drp_status,
            refusal_ground, refusal_reasons, history_seq, history_head, created_at, updated_at)
        SELECT b.reference || '-' || m.reference || '-' || %s, b.campaign_id, b.id, m.id, md.id,
            b.controller_id, %s, %s, 0, '', 0, FALSE, '', '', '', '', '', '', '', '', 0, '', %s, %s
        FROM {Batch._meta.db_table} b
        JOIN {Mandate._meta.db_table} md ON md.state = 'active' AND md.valid_from <= %s AND md.valid_until >= %s
        JOIN {Member._meta.db_table} m ON m.id = md.member_id
        WHERE b.campaign_id = %s AND m.community_id = %s AND m.left_at IS NULL
          AND {_mandate_has_right_sql()}
          AND (md.all_controllers OR EXISTS (
                SELECT 1 FROM {Mandate.controllers.through._meta.db_table} mc
                WHERE mc.mandate_id = md.id AND mc.controller_id = b.controller_id))
        -- Member order makes the member, mandate and campaign indexes grow at their right edge, as in
        -- a plain bulk load, instead of splitting pages all over them.
        ORDER BY m.id, b.id
    """
    params = [
        RIGHT_CODES[right], right, RequestState.QUEUED, now, now, today, today,
        campaign.pk, campaign.community_id, right,
    ]  # fmt: skip
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Room to sort a million rows in memory for this transaction only, not on disk.
            cursor.execute("SET LOCAL work_mem = '256MB'")
        cursor.execute(sql, params)
        return cursor.rowcount


def campaign_launch(*, campaign_id: int, actor: Actor, dispatch: bool = True) -> dict[str, int]:
    """Approve a draft campaign: one batch per controller, one queued request per eligible member ×
    controller × right, and (after commit) the dispatch of every batch by its controller's transport.
    Returns the number of requests created per right. `dispatch=False` leaves the batches pending (the demo
    data records its own history)."""
    now = timezone.now()
    today = _today()
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().get(pk=campaign_id)
        if not can_proceed(campaign.launch):
            raise RequestEngineError(
                f"Campaign {campaign.reference} is {campaign.get_state_display().lower()}."
            )
        controllers = list(campaign.controllers.values_list("pk", "transport"))
        controller_ids = [pk for pk, _ in controllers]
        if not controller_ids:
            raise RequestEngineError("Choose at least one controller before launching the campaign.")
        bad_rights = [r for r in campaign.rights if r not in Right.values]
        if not campaign.rights or bad_rights:
            raise RequestEngineError("Choose the rights the campaign exercises.")
        Batch.objects.bulk_create(
            [
                Batch(campaign=campaign, controller_id=cid, transport=transport)
                for cid, transport in controllers
            ],
            ignore_conflicts=True,
        )
        created = {
            right: _expand_requests(campaign=campaign, right=right, today=today, now=now)
            for right in campaign.rights
        }
        from_state = campaign.state
        campaign.launch()
        campaign.launched_by_id = int(actor.id) if actor.kind == Actor.COORDINATOR and actor.id else None
        campaign.save()
        record_event(
            subject=campaign,
            kind="campaign.launched",
            actor=actor,
            from_state=from_state,
            to_state=campaign.state,
            payload={"requests_created": created, "controllers": len(controller_ids)},
        )
        if dispatch:
            from . import dispatch as outbound
            from .transports import drp

            outbound.queue_campaign_dispatch(campaign_id=campaign.pk)
            drp.queue_campaign_requests(campaign_id=campaign.pk)
    return created


# -- the deadline sweep ----------------------------------------------------------------------------------

_OVERDUE_CANDIDATES = "state IN ({}) AND due_on < %s AND clock_paused = FALSE"


def sweep_deadlines(*, today: datetime.date | None = None) -> int:
    """Mark every request whose deadline has passed as overdue, with its event. Set-based: on PostgreSQL
    one statement claims the rows (skipping rows another transaction holds), moves them and writes their
    events, hashes computed in SQL. Safe to run twice: a second run finds nothing left to move."""
    today = today or _today()
    now = timezone.now()
    if connection.vendor == "postgresql":
        return _sweep_postgresql(today=today, now=now)
    return _sweep_portable(today=today, now=now)


def _digest_sql(prev: str, stream: str, seq: str, from_state: str, payload: str) -> str:
    """The SQL twin of core.audit.event_digest for a system 'request.overdue' event."""
    parts = [
        prev,
        stream,
        f"({seq})::text",
        "'request.overdue'",
        "'system'",
        "'sweep'",
        from_state,
        "'overdue'",
        "%(ts)s",
        payload,
    ]
    return f"encode(sha256(convert_to(concat_ws(chr(31), {', '.join(parts)}), 'UTF8')), 'hex')"


def _sweep_postgresql(*, today: datetime.date, now: datetime.datetime, chunk: int = 5000) -> int:
    r = DataRightsRequest._meta.db_table
    e = RequestEvent._meta.db_table
    payload_text = """'{"due_on":"' || to_char(d.due_on, 'YYYY-MM-DD') || '"}'"""
    sql = f"""
        WITH d AS (
            SELECT id, state AS from_state, history_seq + 1 AS seq, history_head AS prev_hash, due_on,
                   'request:' || id AS stream
            FROM {r}
            WHERE state = ANY(%(states)s) AND due_on < %(today)s AND clock_paused = FALSE
            ORDER BY due_on  -- oldest first, and a range scan of the running-clock index
            LIMIT %(chunk)s
            FOR UPDATE SKIP LOCKED
        ), moved AS (
            UPDATE {r} AS t
            SET state = 'overdue', history_seq = d.seq, updated_at = %(now)s,
                history_head = {_digest_sql("d.prev_hash", "d.stream", "d.seq", "d.from_state", payload_text)}
            FROM d WHERE t.id = d.id
            RETURNING t.id, d.stream, d.seq, d.from_state, d.prev_hash, d.due_on, t.history_head
        )
        INSERT INTO {e} (stream, seq, request_id, kind, actor_kind, actor_id, from_state, to_state, payload,
                         created_at, prev_hash, hash)
        SELECT stream, seq, id, 'request.overdue', 'system', 'sweep', from_state, 'overdue',
               jsonb_build_object('due_on', to_char(due_on, 'YYYY-MM-DD')), %(now)s, prev_hash, history_head
        FROM moved
    """
    params = {
        "states": [str(s) for s in CLOCK_STATES], "today": today, "now": now, "ts": timestamp_text(now),
        "chunk": chunk,
    }  # fmt: skip
    # Chunks keep each transaction's locks and WAL small and let the planner use the primary key for the
    # join; a chunk that comes back short means nothing (unlocked) is left.
    moved = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, params)
            moved += cursor.rowcount
            if cursor.rowcount < chunk:
                return moved


def _sweep_portable(*, today: datetime.date, now: datetime.datetime, chunk: int = 2000) -> int:
    """The same sweep for SQLite (the embedded default): chunks of candidate rows, each claimed with a
    conditional UPDATE on its current state, events bulk-inserted."""
    moved = 0
    while True:
        with transaction.atomic():
            rows = list(
                DataRightsRequest.objects.filter(
                    state__in=CLOCK_STATES, due_on__lt=today, clock_paused=False
                ).values_list("pk", "state", "history_seq", "history_head", "due_on")[:chunk]
            )
            if not rows:
                return moved
            events = []
            for pk, state, seq, head, due_on in rows:
                payload = {"due_on": due_on.isoformat()}
                stream = f"request:{pk}"
                digest = event_digest(
                    prev_hash=head, stream=stream, seq=seq + 1, kind="request.overdue", actor_kind="system",
                    actor_id="sweep", from_state=state, to_state="overdue", created_at=now, payload=payload,
                )  # fmt: skip
                claimed = DataRightsRequest.objects.filter(pk=pk, state=state, history_seq=seq).update(
                    state=RequestState.OVERDUE, history_seq=seq + 1, history_head=digest, updated_at=now
                )
                if claimed:
                    events.append(
                        RequestEvent(
                            stream=stream,
                            seq=seq + 1,
                            request_id=pk,
                            kind="request.overdue",
                            actor_kind="system",
                            actor_id="sweep",
                            from_state=state,
                            to_state="overdue",
                            payload=payload,
                            created_at=now,
                            prev_hash=head,
                            hash=digest,
                        )  # fmt: skip
                    )
            RequestEvent.objects.bulk_create(events)
            moved += len(events)


def campaign_ask_for_identifiers(*, campaign_id: int, actor: Actor) -> int:
    """Ask each member a launch would include who has not said how a campaign's controller knows them (a
    notice: emailed at once or in their digest). Returns how many members were asked. Asking twice on the
    same day sends nothing new."""
    from django.template.loader import render_to_string
    from django.urls import reverse

    from communities.notices import notify_member

    from .selectors import campaign_preview

    campaign = Campaign.objects.select_related("community").get(pk=campaign_id)
    missing: dict[int, tuple[Member, set[str]]] = {}
    for row in campaign_preview(campaign, sample=100_000):
        for member in row.missing_identifiers:
            missing.setdefault(member.pk, (member, set()))[1].add(row.controller.name)
    start_of_day = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    asked = 0
    with transaction.atomic():
        for member, controllers in missing.values():
            notice = notify_member(
                member,
                f"{campaign.name}: how do these organisations know you?",
                render_to_string(
                    "requests_engine/email/identifiers_needed.txt",
                    {"member": member, "campaign": campaign, "controllers": sorted(controllers)},
                ),
                reverse("member-identifiers", args=[member.reference]),
                purpose="campaign.identifiers_needed",
                once_since=start_of_day,
            )
            asked += notice is not None
    return asked


def request_answer_with_files(
    *,
    request_id: int,
    uploads: list,
    actor: Actor,
    outcome: str = "fulfil",
    note: str = "",
    ground: str = "",
    reasons: str = "",
) -> DataRightsRequest:
    """Fulfil (or partly fulfil) with the data attached: the files are checked and stored encrypted and
    the transition made in one transaction, so a refused file leaves the request as it was. The member is
    told after commit; a portability answer without any structured file is flagged to the coordinator."""
    from . import returned_data

    with transaction.atomic():
        request = (
            DataRightsRequest.objects.select_for_update()
            .select_related("member__community")
            .get(pk=request_id)
        )
        if outcome == "fulfil":
            method = request.fulfil
        elif outcome == "partially_fulfil":
            method = request.partially_fulfil
            _check_refusal(ground, reasons)
        else:
            raise RequestEngineError(f"Unknown outcome '{outcome}'.")
        if not can_proceed(method, check_conditions=False):
            raise RequestEngineError(
                f"Request {request.reference} is {request.get_state_display().lower()}: it cannot be answered now."
            )
        try:
            stored = returned_data.store_files(request=request, uploads=uploads, actor=actor)
        except returned_data.UploadRefused as refused:
            raise RequestEngineError(str(refused)) from None
        if outcome == "fulfil":
            request = request_fulfil(request_id=request_id, actor=actor, note=note)
        else:
            request = request_partially_fulfil(
                request_id=request_id, ground=ground, reasons=reasons, actor=actor
            )
        if (
            request.right == "portability"
            and stored
            and not returned_data.portability_answer_is_structured(stored)
        ):
            record_event(subject=request, kind="request.portability_format_flagged", actor=Actor.system(),
                         payload={"types": sorted({f.content_type for f in stored})})  # fmt: skip
        if stored:
            transaction.on_commit(lambda: _tell_member_of_files(request.pk))
    return request


def _tell_member_of_files(request_id: int) -> None:
    """Files the answer's own notice did not cover (it names those stored with it)."""
    from .member_notices import tell_member_of_files

    with transaction.atomic():
        request = (
            DataRightsRequest.objects.select_for_update()
            .select_related("member__user", "member__community", "controller")
            .get(pk=request_id)
        )
        tell_member_of_files(request)


def received_files_expire(*, today: datetime.date | None = None) -> int:
    """Delete returned files past their retention date that the member did not keep (a daily job)."""
    from django.core.files.storage import default_storage

    from .models import ReceivedFile

    today = today or _today()
    deleted = 0
    for received in ReceivedFile.objects.filter(delete_after__lt=today, keep=False, deleted_at__isnull=True):
        default_storage.delete(received.stored.name)
        ReceivedFile.objects.filter(pk=received.pk).update(deleted_at=timezone.now())
        deleted += 1
    return deleted
