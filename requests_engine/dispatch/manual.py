"""Transports a coordinator carries out by hand: a printed letter pack posted to the controller, and a
controller's web form filled in per member. The engine prepares what to post or paste; the coordinator
records when it went, and the requests are dispatched with the date the controller received them."""

from __future__ import annotations

import datetime
import io
import zipfile
from datetime import timedelta

from django.db import transaction
from pypdf import PdfReader, PdfWriter

from core.audit import Actor
from requests_engine import letters, services
from requests_engine.authorities import authorities_ensure, authority_issue
from requests_engine.deadlines import next_working_day_on_or_after
from requests_engine.events import record_event
from requests_engine.exceptions import RequestEngineError
from requests_engine.models import Batch, DataRightsRequest, RequestState, Transport

# Royal Mail first class aims to deliver the next working day; allow two, as the ICO's guidance on
# "deemed receipt" for post does (the coordinator can record the real date instead).
POST_DAYS = 2


def expected_delivery(posted_on: datetime.date, *, jurisdiction: str) -> datetime.date:
    day = posted_on
    for _ in range(POST_DAYS):
        day = next_working_day_on_or_after(day + timedelta(days=1), jurisdiction=jurisdiction)
    return day


def letter_pack(*, batch_id: int) -> bytes:
    """One print-ready PDF: the sealed cover letter, then every member's sealed authority document for this
    controller, for the batch's queued requests."""
    batch = Batch.objects.select_related("controller", "campaign__community").get(pk=batch_id)
    queued = batch.requests.filter(state=RequestState.QUEUED)
    authorities_ensure(controller=batch.controller, mandate_ids=queued.values("mandate_id"))
    letter = letters.collective_letter(batch)
    with zipfile.ZipFile(io.BytesIO(letter.authorities_zip)) as archive:
        documents = [archive.read(name) for name in archive.namelist()]
    writer = PdfWriter()
    for document in [letter.pdf, *documents]:
        writer.append(PdfReader(io.BytesIO(document)))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def batch_mark_posted(
    *,
    batch_id: int,
    posted_on: datetime.date,
    actor: Actor,
    received_on: datetime.date | None = None,
    note: str = "",
) -> int:
    """The coordinator posted the pack: every queued request is dispatched with the date the controller
    received it (recorded, or the expected delivery date), and the batch is marked sent."""
    with transaction.atomic():
        batch = Batch.objects.select_for_update().select_related("controller").get(pk=batch_id)
        if batch.transport != Transport.LETTER:
            raise RequestEngineError(f"Batch {batch.reference} is not sent by letter.")
        received = received_on or expected_delivery(posted_on, jurisdiction=batch.controller.jurisdiction)
        if received < posted_on:
            raise RequestEngineError("The letter cannot arrive before it was posted.")
        ids = list(batch.requests.filter(state=RequestState.QUEUED).values_list("pk", flat=True))
        for request_id in ids:
            services.request_dispatch(
                request_id=request_id,
                received_on=received,
                actor=actor,
                channel="letter",
                expected=received_on is None,
            )
        from_state = batch.state
        batch.posted_on = posted_on
        batch.mark_sent()
        batch.save()
        record_event(
            subject=batch,
            kind="batch.sent",
            actor=actor,
            from_state=from_state,
            to_state=batch.state,
            payload={
                "channel": "letter",
                "posted_on": posted_on,
                "received_on": received,
                "note": note,
                "requests": len(ids),
            },
        )
    return len(ids)


def webform_text(request: DataRightsRequest) -> str:
    """What to paste into the controller's web form for one member."""
    batch = request.batch
    if batch is None:
        raise RequestEngineError(f"Request {request.reference} has not been put in a batch yet.")
    identifiers = letters.disclosed_identifiers(batch.controller, [request.member_id]).get(
        request.member_id, []
    )
    authority = authority_issue(mandate=request.mandate, controller=batch.controller)
    _subject, text = letters.individual_letter(
        request, batch=batch, identifiers=identifiers, authority=authority
    )
    return text


def request_mark_submitted(
    *, request_id: int, actor: Actor, submitted_on: datetime.date
) -> DataRightsRequest:
    request = DataRightsRequest.objects.select_related("controller").get(pk=request_id)
    if request.controller.transport != Transport.WEBFORM:
        raise RequestEngineError(f"{request.controller.name} does not take requests by web form.")
    return services.request_dispatch(
        request_id=request_id, received_on=submitted_on, actor=actor, channel="webform"
    )
