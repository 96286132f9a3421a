"""Sending a launched campaign's batches by email, and recording what became of each message (issue 4).

1. `campaign_dispatch_queue`, called in the launch transaction, queues `tasks.dispatch_batch` for each email
   batch with queued requests, after commit.
2. `batch_dispatch` renders what the controller receives and writes the outbox rows in the transaction that
   moves the batch from pending to sending: the decision to send is committed before anything is sent.
   A collective controller gets one email per batch (letter PDF, manifest CSV, mandates ZIP); a controller
   marked `individual_requests` gets one email per request with that member's mandate, spread out at its
   `send_rate_per_minute` (0 = no limit) through the rows' `not_before`, written a chunk at a time so that
   sending starts while later chunks are written.
3. The outbox sends each row and, once the SMTP server accepts it or refuses it for good, runs the row's
   hook task, which calls `delivery_accepted_record` or `delivery_failed_record`: the requests the message carried become
   sent, received on the Europe/London date of acceptance (Art 12(3); RULES.md (k)), or failed_delivery with
   the reason; the batch becomes sent or failed once none of its requests is waiting.
4. `batch_requeue` sends a failed batch again, as a new message, once the coordinator has fixed the address.
5. `dispatch_sweep` (periodic) makes up for any task that was lost: a worker killed after the SMTP server
   accepted a message but before the hook ran, a dispatch interrupted between chunks, a lost dispatch task.

Everything here is safe to run twice: state is re-checked under the batch's row lock, a request moves only
from the states its model transition allows, and an outbox row is the single record of each message.
Requests move in chunks (`_move_requests`): the model transition runs on each row, so its rules hold, and
each chunk is written with one statement batch and one insert of hash-chained events.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.validators import validate_email
from django.db import connection, transaction
from django.db.models import CharField, Exists, Max, OuterRef, QuerySet, Subquery
from django.db.models.functions import Cast
from django.utils import timezone

from communities.documents import authorities_for, authority_filename, authority_pdf
from core import outbox
from core.audit import Actor, current_key, event_digest, normalise_payload
from core.models import OutboundMessage
from core.pdf import sha256_hex
from requests_engine import letters
from requests_engine.authorities import authorities_ensure
from requests_engine.campaigns.eligibility import covered_requests
from requests_engine.events import record_event
from requests_engine.exceptions import RequestEngineError
from requests_engine.models import Batch, DataRightsRequest, RequestEvent, RequestState, Transport
from requests_engine.tasks import dispatch_batch  # the tasks module imports this one

logger = logging.getLogger(__name__)

ACTOR = Actor.system("dispatch")
LETTER_PURPOSE = "batch.letter"  # a collective letter: subject ("batch", batch id)
REQUEST_PURPOSE = "request.letter"  # one member's request: subject ("request", request id)
ON_SENT_TASK = "requests_engine.tasks.record_delivery_accepted"
ON_FAILED_TASK = "requests_engine.tasks.record_delivery_failed"
QUEUE_CHUNK = 200  # individual letters written per transaction
MOVE_CHUNK = 1000  # requests moved per transaction

Status = OutboundMessage.Status
LIVE = [Status.QUEUED, Status.SENDING, Status.SENT]  # a message that is, or will be, out
S = RequestState


# -- queueing ------------------------------------------------------------------------------------------------


def _queued_requests() -> Exists:
    return Exists(DataRightsRequest.objects.filter(batch=OuterRef("pk"), state=S.QUEUED))


def campaign_dispatch_queue(*, campaign_id: int) -> int:
    """Queue the dispatch of each of the campaign's pending email batches after the caller's transaction
    commits (call it in the launch transaction). Returns how many batches will be sent."""
    batch_ids = list(
        Batch.objects.filter(campaign_id=campaign_id, state=Batch.State.PENDING, transport=Transport.EMAIL)
        .filter(_queued_requests())
        .values_list("pk", flat=True)
    )
    for batch_id in batch_ids:
        transaction.on_commit(partial(_queue_dispatch, batch_id), robust=True)
    return len(batch_ids)


def _queue_dispatch(batch_id: int) -> None:

    dispatch_batch.delay(batch_id)


def batch_dispatch(*, batch_id: int) -> str:
    """Write the outbox message(s) for the batch's queued requests; says what it did."""
    batch = Batch.objects.select_related("controller", "campaign__community").get(pk=batch_id)
    if batch.transport != Transport.EMAIL:
        raise RequestEngineError(
            f"Batch {batch.reference} goes by {batch.get_transport_display()}, not email."
        )
    if batch.state == Batch.State.SENT:
        return "already sent"
    address = batch.controller.email
    try:
        validate_email(address)
    except ValidationError:
        reason = f"{batch.controller.name} has no usable email address ({address or 'none recorded'})."
        return _fail_undeliverable(batch, reason)
    if batch.controller.individual_requests:
        return _dispatch_individually(batch)
    return _dispatch_collectively(batch)


def _lock(batch_id: int) -> Batch:
    # Only the batch row: the controller and campaign are read, not locked.
    locking = Batch.objects.select_for_update(of=("self",))
    return locking.select_related("controller", "campaign__community").get(pk=batch_id)


def _claim(batch: Batch, *, payload: dict[str, Any]) -> None:
    """Pending (or failed, after a requeue) → sending, with its event; the caller holds the row lock."""
    from_state = batch.state
    batch.start_sending()
    batch.save()
    record_event(
        subject=batch,
        kind="batch.sending",
        actor=ACTOR,
        from_state=from_state,
        to_state=batch.state,
        payload=payload,
    )


def _live_letters(batch: Batch) -> QuerySet[OutboundMessage]:
    return OutboundMessage.objects.filter(
        subject_type="batch", subject_id=str(batch.pk), purpose=LETTER_PURPOSE, status__in=LIVE
    )


def _dispatch_collectively(batch: Batch) -> str:
    if batch.state == Batch.State.SENDING or _live_letters(batch).exists():
        return "already being sent"
    if not _waiting(batch).exists():
        return "nothing to send"
    authorities_ensure(controller=batch.controller, mandate_ids=_waiting(batch).values("mandate_id"))
    letter = letters.collective_letter(batch)
    with transaction.atomic():
        locked = _lock(batch.pk)
        if locked.state not in (Batch.State.PENDING, Batch.State.FAILED) or _live_letters(locked).exists():
            return "already being sent"  # another worker got here first
        if not letter.request_ids:
            return "nothing to send"
        names = letter.filenames
        locked.letter_pdf.save(names["letter"], ContentFile(letter.pdf), save=False)
        locked.letter_sha256 = sha256_hex(letter.pdf)
        locked.manifest.save(names["manifest"], ContentFile(letter.manifest), save=False)
        message = outbox.queue_email(
            to=[locked.controller.email],
            cc=letters.copied_to(locked.controller),
            reply_to=[letters.reply_address(locked)],
            subject=letter.subject,
            body_text=letter.text,
            attachments=[
                (names["letter"], letter.pdf, "application/pdf"),
                (names["manifest"], letter.manifest, "text/csv"),
                (names["authorities"], letter.authorities_zip, "application/zip"),
            ],
            subject_type="batch",
            subject_id=str(locked.pk),
            purpose=LETTER_PURPOSE,
            on_sent_task=ON_SENT_TASK,
            on_failed_task=ON_FAILED_TASK,
        )
        _claim(
            locked,
            payload={
                "to": locked.controller.email,
                "message_id": message.message_id,
                "requests": len(letter.request_ids),
                "letter_sha256": locked.letter_sha256,
            },
        )
    return f"queued {message.message_id} for {len(letter.request_ids)} request(s)"


def _unsent(batch: Batch) -> QuerySet[DataRightsRequest]:
    """Queued requests with no message on its way: those an individual dispatch still has to write."""
    live = OutboundMessage.objects.filter(
        subject_type="request",
        subject_id=Cast(OuterRef("pk"), output_field=CharField()),
        purpose=REQUEST_PURPOSE,
        status__in=LIVE,
    )
    return _waiting(batch).filter(~Exists(live))


def _batch_request_keys(batch: Batch) -> QuerySet:
    return (
        DataRightsRequest.objects.filter(batch_id=batch.pk)
        .annotate(key=Cast("pk", output_field=CharField()))
        .values("key")
    )


def _next_slot(batch: Batch, interval: timedelta) -> datetime:
    """When the next message to this controller may go: after the last one still waiting (a resumed or
    chunked dispatch carries on the spacing), and not before now."""
    now = timezone.now()
    if not interval:
        return now
    latest = OutboundMessage.objects.filter(
        subject_type="request",
        purpose=REQUEST_PURPOSE,
        status=Status.QUEUED,
        subject_id__in=Subquery(_batch_request_keys(batch)),
    ).aggregate(latest=Max("not_before"))["latest"]
    return max(now, latest + interval) if latest else now


def _on_their_way(request_ids: list[int]) -> set[int]:
    """Which of these requests already have a message queued, being sent or sent."""
    keys = OutboundMessage.objects.filter(
        subject_type="request",
        purpose=REQUEST_PURPOSE,
        status__in=LIVE,
        subject_id__in=[str(pk) for pk in request_ids],
    ).values_list("subject_id", flat=True)
    return {int(key) for key in keys}


def _dispatch_individually(batch: Batch) -> str:
    controller = batch.controller
    rate = controller.send_rate_per_minute
    interval = timedelta(minutes=1) / rate if rate else timedelta(0)
    written = last_pk = 0
    while True:
        # The next chunk in pk order; a resumed dispatch passes over requests already on their way.
        upcoming = list(
            _waiting(batch)
            .filter(pk__gt=last_pk)
            .order_by("pk")
            .values_list("pk", "mandate_id")[:QUEUE_CHUNK]
        )
        if not upcoming:
            break
        last_pk = upcoming[-1][0]
        authorities_ensure(controller=controller, mandate_ids=[mandate_id for _, mandate_id in upcoming])
        with transaction.atomic():
            locked = _lock(batch.pk)
            if locked.state == Batch.State.SENT:
                break
            candidates = _waiting(locked).filter(pk__in=[pk for pk, _ in upcoming])
            on_their_way = _on_their_way([pk for pk, _ in upcoming])
            chunk = [
                r
                for r in candidates.select_related("member", "mandate").order_by("pk")
                if r.pk not in on_their_way
            ]
            if not chunk:
                continue
            if locked.state != Batch.State.SENDING:
                _claim(locked, payload={"to": controller.email, "requests": _waiting(locked).count()})
            base = letters.letter_context(locked)
            identifiers = letters.disclosed_identifiers(controller, {r.member_id for r in chunk})
            start = _next_slot(locked, interval)
            authorities = authorities_for(controller=controller, mandate_ids={r.mandate_id for r in chunk})
            pdfs: dict[int, bytes] = {}
            drafts = []
            for position, request in enumerate(chunk):
                authority = authorities.get(request.mandate_id)
                if authority is None:  # never sent without its authority document; the next run issues it
                    continue
                subject, text = letters.individual_letter(
                    request,
                    batch=locked,
                    identifiers=identifiers.get(request.member_id, []),
                    authority=authority,
                    base=base,
                )
                if authority.pk not in pdfs:
                    pdfs[authority.pk] = authority_pdf(authority)
                attachment = (authority_filename(authority), pdfs[authority.pk], "application/pdf")
                drafts.append(
                    outbox.draft_email(
                        to=[controller.email],
                        cc=letters.copied_to(controller),
                        reply_to=[letters.reply_address(locked)],
                        subject=subject,
                        body_text=text,
                        attachments=[attachment],
                        subject_type="request",
                        subject_id=str(request.pk),
                        purpose=REQUEST_PURPOSE,
                        not_before=start + position * interval,
                        on_sent_task=ON_SENT_TASK,
                        on_failed_task=ON_FAILED_TASK,
                    )
                )
            outbox.queue_drafts(drafts)  # one INSERT for the chunk's messages, one for their attachments
            written += len(drafts)
    return f"queued {written} message(s)"


def _fail_undeliverable(batch: Batch, reason: str) -> str:
    """Nothing can be sent (no usable address): the queued requests fail with the reason, and so does the
    batch, so that fixing the address and re-queuing works as after a bounce."""
    _move_requests(
        _waiting(batch),
        transition="fail_delivery",
        event="request.delivery_failed",
        payload={"error": reason},
        error=reason,
    )
    with transaction.atomic():
        locked = _lock(batch.pk)
        if locked.state in (Batch.State.PENDING, Batch.State.SENDING):
            _mark(locked, failed=True, error=reason)
    return f"failed: {reason}"


# -- what became of a message --------------------------------------------------------------------------------


# What an outcome needs of the outbox row (not its body).
_OUTCOME_FIELDS = (
    "status",
    "to",
    "message_id",
    "subject_type",
    "subject_id",
    "purpose",
    "sent_at",
    "last_error",
)


def _carried(message: OutboundMessage) -> QuerySet[DataRightsRequest] | None:
    """The requests a dispatch message carried; None if it is not one of ours."""
    if message.purpose == LETTER_PURPOSE and message.subject_type == "batch":
        return DataRightsRequest.objects.filter(batch_id=int(message.subject_id))
    if message.purpose == REQUEST_PURPOSE and message.subject_type == "request":
        return DataRightsRequest.objects.filter(pk=int(message.subject_id))
    return None


def delivery_accepted_record(*, message_ids: Iterable[int]) -> int:
    """Outbox messages `message_ids` were accepted by the controllers' mail servers: every request each
    carried is sent, received on the Europe/London date of acceptance, with that message's Message-ID; then
    the batches are settled. Requests sent one per message move together, a chunk per transaction. Returns
    how many requests moved (0 on a repeat)."""
    messages = list(
        OutboundMessage.objects.filter(pk__in=list(message_ids), status=Status.SENT).only(*_OUTCOME_FIELDS)
    )
    by_request: dict[int, OutboundMessage] = {}
    count = 0
    for message in messages:
        if message.purpose == REQUEST_PURPOSE and message.subject_type == "request":
            by_request[int(message.subject_id)] = message
        elif (requests := _carried(message)) is not None:
            moved = _move_requests(
                requests.filter(state__in=[S.QUEUED, S.FAILED_DELIVERY]),
                transition="dispatch",
                event="request.dispatched",
                per_row=partial(_dispatched_for, message),
            )
            for batch_id, controller_id in moved.batches:
                _settle(batch_id, controller_id, message=message)
            count += moved.count
    if by_request:
        moved = _move_requests(
            DataRightsRequest.objects.filter(pk__in=list(by_request)).filter(
                state__in=[S.QUEUED, S.FAILED_DELIVERY]
            ),
            transition="dispatch",
            event="request.dispatched",
            per_row=lambda request: _dispatched(by_request[request.pk]),
        )
        for batch_id, controller_id in moved.batches:
            _settle(batch_id, controller_id)
        count += moved.count
    return count


def _dispatched_for(
    message: OutboundMessage, _request: DataRightsRequest
) -> tuple[dict[str, Any], dict[str, Any]]:
    return _dispatched(message)


def _dispatched(message: OutboundMessage) -> tuple[dict[str, Any], dict[str, Any]]:
    """The transition's arguments and the event's payload for a request that `message` carried."""
    received_on = timezone.localdate(message.sent_at)  # an accepted email is received that day (ICO)
    return (
        {"received_on": received_on, "message_id": message.message_id},
        {"received_on": received_on, "channel": Transport.EMAIL, "message_id": message.message_id},
    )


def _superseded(message: OutboundMessage) -> bool:
    return OutboundMessage.objects.filter(
        subject_type=message.subject_type,
        subject_id=message.subject_id,
        purpose=message.purpose,
        pk__gt=message.pk,
    ).exists()


def delivery_failed_record(*, message_ids: Iterable[int]) -> int:
    """Outbox messages `message_ids` failed for good (a 5xx refusal, or the last attempt): the queued
    requests each carried become failed_delivery with the reason, then the batch is settled. A failure that
    a later message for the same batch or request has superseded changes nothing."""
    return sum(_one_delivery_failed(message_id) for message_id in message_ids)


def _one_delivery_failed(message_id: int) -> int:
    message = (
        OutboundMessage.objects.filter(pk=message_id, status=Status.FAILED).only(*_OUTCOME_FIELDS).first()
    )
    requests = _carried(message) if message else None
    if message is None or requests is None or _superseded(message):
        return 0
    error = f"The email to {', '.join(message.to)} could not be delivered: {message.last_error}"
    moved = _move_requests(
        requests.filter(state=S.QUEUED),
        transition="fail_delivery",
        event="request.delivery_failed",
        payload={"error": error[:2000]},
        error=error[:2000],
    )
    for batch_id, controller_id in moved.batches:
        _settle(batch_id, controller_id, message=message)
    return moved.count


def _mark(batch: Batch, *, failed: bool, error: str = "", payload: dict[str, Any] | None = None) -> None:
    from_state = batch.state
    if failed:
        batch.mark_failed(error=error[:2000])
    else:
        batch.mark_sent()
    batch.save()
    record_event(
        subject=batch,
        kind="batch.failed" if failed else "batch.sent",
        actor=ACTOR,
        from_state=from_state,
        to_state=batch.state,
        payload={"error": error[:2000]} if failed else payload,
    )


def _waiting(batch: Batch) -> QuerySet[DataRightsRequest]:
    return _queued_in(batch.pk, batch.controller_id)


def _queued_in(batch_id: int, controller_id: int) -> QuerySet[DataRightsRequest]:
    # The controller narrows it to the (controller, state) index: a batch's queued requests are found
    # directly, not by reading past the thousands already sent.
    return DataRightsRequest.objects.filter(controller_id=controller_id, batch_id=batch_id, state=S.QUEUED)


def _settle(batch_id: int, controller_id: int, *, message: OutboundMessage | None = None) -> None:
    """Move the batch to sent or failed once none of its requests is waiting for a message. Checked after
    the requests' own commit, so of two hooks finishing together the later one always sees both."""
    if _queued_in(batch_id, controller_id).exists():
        return
    with transaction.atomic():
        batch = _lock(batch_id)
        if batch.state not in (Batch.State.SENDING, Batch.State.FAILED):
            return
        if batch.controller.individual_requests and batch.transport == Transport.EMAIL:
            failed = batch.requests.filter(state=S.FAILED_DELIVERY).count()
            if failed and batch.state == Batch.State.SENDING:
                total = batch.requests.count()
                last = (
                    batch.requests.filter(state=S.FAILED_DELIVERY)
                    .order_by("-updated_at")
                    .values_list("delivery_error", flat=True)
                    .first()
                )
                _mark(
                    batch, failed=True, error=f"{failed} of {total} requests could not be delivered. {last}"
                )
            elif not failed:
                _mark(batch, failed=False, payload={"requests": batch.requests.filter(state=S.SENT).count()})
            return
        # A collective letter: the batch follows its latest message.
        latest = message or (
            OutboundMessage.objects.filter(
                subject_type="batch", subject_id=str(batch_id), purpose=LETTER_PURPOSE
            )
            .order_by("-pk")
            .first()
        )
        if latest is None:
            return
        if latest.status == Status.SENT:
            batch.message_id = latest.message_id
            _mark(batch, failed=False, payload={"message_id": latest.message_id})
        elif (
            latest.status == Status.FAILED and batch.state == Batch.State.SENDING and not _superseded(latest)
        ):
            _mark(batch, failed=True, error=latest.last_error)


# -- sending again -------------------------------------------------------------------------------------------


def batch_requeue(*, batch_id: int, actor: Actor) -> int:
    """Send a failed batch again, as a new message, once the controller's address is fixed: its undelivered
    requests are queued again and the batch is dispatched after commit. Returns how many were re-queued."""
    with transaction.atomic():
        batch = _lock(batch_id)
        if batch.state != Batch.State.FAILED:
            raise RequestEngineError(
                f"Batch {batch.reference} is {batch.get_state_display().lower()}: only a batch whose "
                "delivery failed can be sent again."
            )
        try:
            validate_email(batch.controller.email)
        except ValidationError:
            raise RequestEngineError(
                f"Record a working email address for {batch.controller.name} before sending again."
            ) from None
        purpose = REQUEST_PURPOSE if batch.controller.individual_requests else LETTER_PURPOSE
        if purpose == LETTER_PURPOSE and _live_letters(batch).exists():
            raise RequestEngineError(f"Batch {batch.reference} is already being sent again.")
        # Only what the members' mandates still cover is sent again (DESIGN §2).
        undelivered = batch.requests.filter(state=S.FAILED_DELIVERY)
        requeued = _move_requests(
            covered_requests(undelivered, campaign=batch.campaign, controller_id=batch.controller_id),
            transition="requeue",
            event="request.requeued",
            actor=actor,
        ).count
        record_event(
            subject=batch,
            kind="batch.requeued",
            actor=actor,
            from_state=batch.state,
            to_state=batch.state,
            payload={"requests": requeued, "to": batch.controller.email},
        )
        transaction.on_commit(partial(_queue_dispatch, batch.pk), robust=True)
    return requeued


# -- the backstop --------------------------------------------------------------------------------------------


def dispatch_sweep(*, older_than: timedelta = timedelta(minutes=15)) -> dict[str, int]:
    """Make up for lost tasks; safe to run at any time, twice.

    * A message accepted or failed whose hook never ran (its worker died): apply its outcome.
    * A batch whose requests are all settled but that is still sending: settle it.
    * A batch waiting to be dispatched (pending, re-queued, or an individual dispatch interrupted between
      chunks) with nothing done for `older_than`: queue its dispatch again.
    """
    outcomes = 0
    busy = Batch.objects.filter(
        transport=Transport.EMAIL, state__in=[Batch.State.SENDING, Batch.State.FAILED]
    ).select_related("controller")
    for batch in busy:
        if batch.controller.individual_requests:
            outcomes += _apply_lost_request_outcomes(batch)
        else:
            latest = (
                OutboundMessage.objects.filter(
                    subject_type="batch",
                    subject_id=str(batch.pk),
                    purpose=LETTER_PURPOSE,
                    status__in=[Status.SENT, Status.FAILED],
                )
                .order_by("-pk")
                .first()
            )
            if latest and latest.status == Status.SENT:
                outcomes += delivery_accepted_record(message_ids=[latest.pk])
            elif latest:
                outcomes += delivery_failed_record(message_ids=[latest.pk])
        _settle(batch.pk, batch.controller_id)
    restarted = _restart_stalled(timezone.now() - older_than)
    if outcomes or restarted:
        logger.warning(
            "dispatch sweep: %s request outcome(s) applied, %s batch(es) restarted", outcomes, restarted
        )
    return {"outcomes": outcomes, "restarted": restarted}


def _apply_lost_request_outcomes(batch: Batch) -> int:
    def keys(*states: str) -> Subquery:
        requests = DataRightsRequest.objects.filter(batch_id=batch.pk, state__in=states)
        return Subquery(requests.annotate(key=Cast("pk", output_field=CharField())).values("key"))

    letters_out = OutboundMessage.objects.filter(subject_type="request", purpose=REQUEST_PURPOSE)
    # Accepted messages whose requests are not yet sent, failed ones whose requests are still queued.
    accepted = letters_out.filter(status=Status.SENT, subject_id__in=keys(S.QUEUED, S.FAILED_DELIVERY))
    failed = letters_out.filter(status=Status.FAILED, subject_id__in=keys(S.QUEUED))
    moved = 0
    for query, outcome in ((accepted, delivery_accepted_record), (failed, delivery_failed_record)):
        ids = list(query.order_by("pk").values_list("pk", flat=True))
        for start in range(0, len(ids), MOVE_CHUNK):
            moved += outcome(message_ids=ids[start : start + MOVE_CHUNK])
    return moved


def _restart_stalled(cutoff: datetime) -> int:
    last_event = Subquery(
        RequestEvent.objects.filter(batch=OuterRef("pk")).order_by("-seq").values("created_at")[:1]
    )
    candidates = (
        Batch.objects.filter(
            transport=Transport.EMAIL,
            state__in=[Batch.State.PENDING, Batch.State.FAILED, Batch.State.SENDING],
        )
        .filter(_queued_requests(), created_at__lte=cutoff)
        .annotate(last_event=last_event)
        .select_related("controller")
    )
    restarted = 0
    for batch in candidates:
        if batch.last_event and batch.last_event > cutoff:
            continue  # something happened recently: its task may still be running
        if batch.state == Batch.State.SENDING and not (
            batch.controller.individual_requests and _unsent(batch).exists()
        ):
            continue  # its messages are on their way
        transaction.on_commit(partial(_queue_dispatch, batch.pk), robust=True)
        restarted += 1
    return restarted


# -- moving many requests ------------------------------------------------------------------------------------

_REQUEST_FIELDS = [f for f in DataRightsRequest._meta.concrete_fields if not f.primary_key]


@dataclass(frozen=True)
class Moved:
    count: int
    batches: set[tuple[int, int]]  # (batch, controller) of the requests moved


def _move_requests(
    requests: QuerySet[DataRightsRequest],
    *,
    transition: str,
    event: str,
    actor: Actor = ACTOR,
    payload: dict[str, Any] | None = None,
    chunk: int = MOVE_CHUNK,
    per_row: Callable[[DataRightsRequest], tuple[dict[str, Any], dict[str, Any]]] | None = None,
    **arguments: Any,
) -> Moved:
    """Apply one model transition to every request in `requests`, a chunk per transaction: lock the rows,
    run the transition on each (so the model's rules and its due-date arithmetic apply), write the changed
    columns as one statement batch and the hash-chained events as one insert. Never one transaction per
    request, so a batch of 100,000 moves in about a hundred. `requests` must filter on the source states,
    so that moved rows leave it. `per_row`, if given, returns each request's own transition arguments and
    event payload, added to the common ones."""
    payload = normalise_payload(payload)
    # The controller comes along (its nation's bank holidays set due_on) but only the requests are locked.
    locking = requests.select_for_update(of=("self",)).select_related("controller").order_by("pk")
    count, batches = 0, set[tuple[int, int]]()
    while True:
        with transaction.atomic():
            rows = list(locking[:chunk])
            if rows:
                _apply(
                    rows,
                    transition=transition,
                    event=event,
                    actor=actor,
                    payload=payload,
                    arguments=arguments,
                    per_row=per_row,
                )
        count += len(rows)
        batches.update((r.batch_id, r.controller_id) for r in rows if r.batch_id)
        # A short chunk means none is left, or the rest changed state meanwhile (no longer ours to move).
        if len(rows) < chunk:
            return Moved(count, batches)


def _apply(
    rows: list[DataRightsRequest],
    *,
    transition: str,
    event: str,
    actor: Actor,
    payload: dict[str, Any],
    arguments: dict[str, Any],
    per_row: Callable[[DataRightsRequest], tuple[dict[str, Any], dict[str, Any]]] | None = None,
) -> None:
    now = timezone.now()
    key = current_key()
    events = []
    changed: set[str] = set()
    common_payload = payload
    for request in rows:
        before = {f.attname: getattr(request, f.attname) for f in _REQUEST_FIELDS}
        from_state = request.state
        own_arguments = arguments
        if per_row is not None:
            extra_arguments, extra_payload = per_row(request)
            own_arguments = {**arguments, **extra_arguments}
            payload = normalise_payload({**common_payload, **extra_payload})
        getattr(request, transition)(**own_arguments)
        seq = request.history_seq + 1
        stream = f"request:{request.pk}"
        digest = event_digest(
            key=key,
            prev_hash=request.history_head,
            stream=stream,
            seq=seq,
            kind=event,
            actor_kind=actor.kind,
            actor_id=actor.id,
            from_state=from_state,
            to_state=request.state,
            created_at=now,
            payload=payload,
        )
        events.append(
            RequestEvent(
                stream=stream,
                seq=seq,
                request_id=request.pk,
                kind=event,
                actor_kind=actor.kind,
                actor_id=actor.id,
                from_state=from_state,
                to_state=request.state,
                payload=payload,
                created_at=now,
                prev_hash=request.history_head,
                hash=digest,
                key_id=key.id,
            )
        )
        request.history_seq, request.history_head, request.updated_at = seq, digest, now
        changed.update(name for name, value in before.items() if getattr(request, name) != value)
    fields = [f for f in _REQUEST_FIELDS if f.attname in changed]
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(f.column)} = %s" for f in fields)
    sql = f"UPDATE {quote(DataRightsRequest._meta.db_table)} SET {assignments} WHERE {quote('id')} = %s"
    params = [[f.get_db_prep_save(getattr(r, f.attname), connection) for f in fields] + [r.pk] for r in rows]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)
    RequestEvent.objects.bulk_create(events)
