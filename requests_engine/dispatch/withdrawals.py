"""Telling controllers that requests are withdrawn, the same way each request reached them (issue 4).

A member who revokes or narrows their mandate withdraws the open requests it no longer covers (communities
services); the controllers that already have them must be told:
* a request exercised over DRP is revoked there (`POST /drp/revoke`, a task per request, retried);
* a controller that takes requests by post gets a letter: the PDF is emailed to the community's coordinators
  to print and post;
* a web-form-only controller with no email address: the coordinators get the text to paste into its form;
* everyone else gets one email listing its withdrawn requests.
Each request gets an event saying how its controller was told.

When the member instead keeps a request as their own (revoking, narrowing, or at expiry), its controller is
told the same way that the community no longer acts for the member and that the answer goes to the member
directly; DRP has no message for that, so those controllers get an email (or a letter) instead.
"""

from __future__ import annotations

from collections import defaultdict
from functools import partial

from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from core import outbox
from core.audit import Actor
from core.pdf import render_pdf
from requests_engine import tasks
from requests_engine.events import record_event
from requests_engine.models import DataRightsRequest, Transport

ACTOR = Actor.system("withdrawal")
NARROWED = "The member narrowed their mandate."
EXPIRED = "The member's mandate expired."
REVOKED = "The member revoked the mandate."


def _how(request: DataRightsRequest) -> str:
    if request.drp_request_id:
        return Transport.DRP
    transport = request.batch.transport if request.batch is not None else request.controller.transport
    if transport == Transport.LETTER:
        return Transport.LETTER
    if not request.controller.email:
        return Transport.LETTER if transport != Transport.WEBFORM else Transport.WEBFORM
    return Transport.EMAIL


def withdrawal_notices_queue(
    *, request_ids: list[int], reason: str = "", handed_over: bool = False
) -> dict[str, int]:
    """Queue, for each controller, the notice that these (withdrawn) requests are withdrawn, or with
    `handed_over` that these requests are now the members' own, by the way they reached it. Returns how
    many requests go by each way. Safe to call twice only in the sense that DRP revocation is idempotent;
    emails and letters are queued again."""

    requests = list(
        DataRightsRequest.objects.filter(pk__in=request_ids)
        .select_related("controller", "batch", "member__community")
        .order_by("controller__name", "pk")
    )
    groups: dict[tuple[int, str], list[DataRightsRequest]] = defaultdict(list)
    counts: dict[str, int] = defaultdict(int)
    for request in requests:
        how = _how(request)
        if handed_over and how == Transport.DRP:
            how = Transport.EMAIL if request.controller.email else Transport.LETTER
        counts[how] += 1
        groups[(request.controller_id, how)].append(request)
    with transaction.atomic():
        locked = DataRightsRequest.objects.select_for_update().in_bulk([r.pk for r in requests])  # for events
        for (_controller_id, how), group in groups.items():
            if how == Transport.DRP:
                message_id = ""
                for request in group:
                    transaction.on_commit(
                        partial(tasks.revoke_drp_request.delay, request.pk, reason), robust=True
                    )
            else:
                message_id = _queue_notice(group, how=how, reason=reason, handed_over=handed_over).message_id
            for request in group:
                record_event(
                    subject=locked[request.pk],
                    kind="request.handover_notice" if handed_over else "request.withdrawal_notice",
                    actor=ACTOR,
                    payload={"channel": how, "message_id": message_id},
                )
    return dict(counts)


def _queue_notice(requests: list[DataRightsRequest], *, how: str, reason: str, handed_over: bool = False):
    controller = requests[0].controller
    community = requests[0].member.community
    context = {
        "controller": controller,
        "community": community,
        "requests": requests,
        "narrowed": reason == NARROWED,
        "expired": reason == EXPIRED,
        "handed_over": handed_over,
    }
    text = render_to_string("communities/email/requests_withdrawn.txt", context).strip()
    if how == Transport.EMAIL:
        subject = (
            f"{community.name} no longer acts for {len(requests)} member(s): answer them directly"
            if handed_over
            else f"Withdrawn: {len(requests)} data rights request(s) from {community.name}"
        )
        return outbox.queue_email(
            to=[controller.email],
            reply_to=[community.contact_email],
            subject=subject,
            body_text=text,
            subject_type="controller",
            subject_id=str(controller.pk),
            purpose="request.handover_notice" if handed_over else "request.withdrawn_notice",
        )
    # By hand: the coordinators post the letter or paste the text into the web form.
    opening = text.split("\n\n")[1] if "\n\n" in text else text
    attachments = []
    if how == Transport.LETTER:
        html = render_to_string(
            "requests_engine/withdrawal/letter.html",
            {**context, "text": opening, "today": timezone.localdate()},
        )
        attachments.append((f"withdrawal-{controller.slug}.pdf", render_pdf(html), "application/pdf"))
    body = render_to_string(
        "requests_engine/withdrawal/to_post.txt",
        {**context, "letter": how == Transport.LETTER, "text": opening, "reason": reason or "withdrawn"},
    )
    action = "post" if how == Transport.LETTER else "send through the web form"
    what = (
        f"{len(requests)} request(s) to {controller.name} are now the members' own"
        if handed_over
        else f"withdrawal of {len(requests)} request(s) to {controller.name}"
    )
    return outbox.queue_email(
        to=[community.contact_email],
        subject=f"To {action}: {what}",
        body_text=body,
        attachments=attachments,
        subject_type="controller",
        subject_id=str(controller.pk),
        purpose="request.withdrawn_by_hand",
    )
