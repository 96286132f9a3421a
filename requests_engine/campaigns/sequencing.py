"""Erasure after access: where one campaign asks the same controller for a member's data (Art 15) and to
erase it (Art 17), the erasure waits until the access answers are in, so members see what was held before
it is gone. A member who confirmed the erasure may choose to send it at once.

At launch the waiting erasures are drafts in a second batch per controller, held. The daily sweep releases
a held batch once none of the campaign's access requests to that controller is still waiting for an answer
(each answered, refused, or past its deadline: the sweep marks those overdue first), re-checking each
request against the member's mandate in force, then dispatches it like any batch.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet

from communities.models import Mandate, Right
from core.audit import Actor
from requests_engine import services
from requests_engine.campaigns.eligibility import covered_mandates, request_covered
from requests_engine.dispatch import batches, drp
from requests_engine.events import record_event
from requests_engine.models import Batch, Campaign, Confirmation, DataRightsRequest, Transport
from requests_engine.models import RequestState as S

ACTOR = Actor.system("sequencing")
# An access request in one of these has not been answered, and its deadline has not passed.
AWAITING_ANSWER = [S.DRAFT, S.QUEUED, S.SENT, S.FAILED_DELIVERY, S.ACKNOWLEDGED, S.INFO_REQUESTED, S.EXTENDED]


def is_sequenced(campaign: Campaign) -> bool:
    return Right.ACCESS in campaign.rights and Right.ERASURE in campaign.rights


def split_erasures(mandates: QuerySet[Mandate], *, campaign: Campaign, at_once: bool) -> QuerySet[Mandate]:
    """Those of the covered mandates whose member chose to send the erasure at once (or the others)."""
    chose = Confirmation.objects.filter(
        campaign=campaign,
        member=OuterRef("member_id"),
        state=Confirmation.State.CONFIRMED,
        erasure_at_once=True,
    )
    return mandates.filter(Exists(chose)) if at_once else mandates.exclude(Exists(chose))


def held_batch_for(batch: Batch, *, today) -> Batch | None:
    """At launch: the held batch for the erasures to this controller that wait for the access answers,
    made only when there is one to hold."""
    mandates = covered_mandates(
        campaign=batch.campaign, controller_id=batch.controller_id, right=Right.ERASURE, on=today
    )
    if not split_erasures(mandates, campaign=batch.campaign, at_once=False).exists():
        return None
    held, _ = Batch.objects.get_or_create(
        campaign=batch.campaign,
        controller_id=batch.controller_id,
        after_access=True,
        defaults={"transport": batch.transport, "state": Batch.State.HELD},
    )
    return held


def waiting_on(batch: Batch) -> QuerySet[DataRightsRequest]:
    """The campaign's access requests to this controller still awaiting an answer."""
    return DataRightsRequest.objects.filter(
        campaign_id=batch.campaign_id,
        controller_id=batch.controller_id,
        right=Right.ACCESS,
        state__in=AWAITING_ANSWER,
    )


def held_batches_release() -> int:
    """Release every held batch whose access answers are in; returns how many. Safe to run twice."""
    released = 0
    for batch in Batch.objects.filter(state=Batch.State.HELD).select_related("campaign"):
        if batch.campaign.state == Campaign.State.DRAFT or waiting_on(batch).exists():
            continue
        released += _release(batch.pk)
    return released


def _release(batch_id: int) -> int:
    with transaction.atomic():
        batch = Batch.objects.select_for_update().select_related("controller").get(pk=batch_id)
        if batch.state != Batch.State.HELD or waiting_on(batch).exists():
            return 0
        sent = withdrawn = 0
        for request in batch.requests.filter(state=S.DRAFT).select_related("campaign", "controller"):
            # The member may have narrowed their mandate since launch: the one rule decides again.
            if request_covered(request):
                services.request_approve(request_id=request.pk, actor=ACTOR)
                sent += 1
            else:
                services.request_withdraw(
                    request_id=request.pk, actor=ACTOR, reason="The member's mandate no longer covers it."
                )
                withdrawn += 1
        batch.release()
        batch.save()
        record_event(
            subject=batch,
            kind="batch.released",
            actor=ACTOR,
            from_state=Batch.State.HELD,
            to_state=batch.state,
            payload={"requests": sent, "withdrawn": withdrawn},
        )
        # Letters and web forms join the print queue as a pending batch; email and DRP go out as at launch.
        if batch.transport == Transport.EMAIL:
            batches.campaign_dispatch_queue(campaign_id=batch.campaign_id)
        elif batch.transport == Transport.DRP:
            drp.drp_requests_queue(campaign_id=batch.campaign_id, batch_id=batch.pk)
    return 1
