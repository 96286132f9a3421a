"""Portability forwarding (Art 20(2) UK GDPR): a member asks for a file a controller returned under the
right to data portability to be sent on to another controller in the directory.

`received_file_forward` checks the ask, decrypts the stored file and queues one email to the receiving controller
through the outbox: the file, a covering letter and the member's sealed authority document for the receiving
controller (authorities.py), never the full mandate. The forward row and the
request's event are written in the same transaction, so a refused or rolled-back ask sends nothing; the
outbox row's status is the delivery status the member sees.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.utils import timezone

from communities.documents import authority_filename, authority_pdf, authority_url
from communities.models import Authority, Mandate, Member, Right
from core import crypto, outbox
from core.audit import Actor
from core.models import OutboundMessage
from requests_engine.authorities import authority_issue
from requests_engine.campaigns.eligibility import covered_mandates
from requests_engine.events import record_event
from requests_engine.exceptions import ForwardingError
from requests_engine.letters import disclosed_identifiers, letterhead
from requests_engine.models import Controller, DataRightsRequest, PortabilityForward, ReceivedFile
from requests_engine.responses import files as returned_files

PURPOSE = "request.portability_forward"
logger = logging.getLogger(__name__)


def why_not_forwardable(request: DataRightsRequest) -> str:
    """Why nothing of this request can be sent on, or "" if a file of it can."""
    if request.right != Right.PORTABILITY:
        return (
            "Only data returned for a data portability request (Article 20) can be sent to another "
            "organisation."
        )
    if not request.files.filter(deleted_at__isnull=True).exists():
        return f"{request.controller.name} has not sent any file we still hold for this request."
    return ""


def _mandate_for(member: Member, to_controller: Controller, source: DataRightsRequest) -> Mandate:
    """The mandate in force that names the receiving controller, portability and the purpose the data was
    asked for (DESIGN §2)."""
    mandate = None
    if source.campaign is not None:
        mandate = (
            covered_mandates(
                campaign=source.campaign, controller_id=to_controller.pk, right=Right.PORTABILITY
            )
            .filter(member=member)
            .first()
        )
    if mandate is None:
        raise ForwardingError(
            f"Your mandate does not let the community exercise your right to data portability with "
            f"{to_controller.name}. Sign a new mandate that includes it, then ask again."
        )
    return mandate


def received_file_forward(
    *, file: ReceivedFile, to_controller: Controller, member: Member, actor: Actor
) -> PortabilityForward:
    """Send a returned file on to another controller, with a covering letter citing Art 20(2) and the
    member's sealed authority document for that controller. Raises ForwardingError, before anything is written, when the ask is refused."""
    with transaction.atomic():
        # The request's row lock serialises two asks for the same file, so the duplicate check cannot race.
        request = (
            DataRightsRequest.objects.select_for_update()
            .select_related("controller", "member__community")
            .get(pk=file.request_id)
        )
        received = ReceivedFile.objects.get(pk=file.pk)
        if request.member_id != member.pk:
            raise ForwardingError("This file is not yours to send on.")
        if received.deleted_at is not None:
            raise ForwardingError(
                f"“{received.original_name}” was deleted on {received.deleted_at:%d %B %Y}: "
                "there is nothing left to send."
            )
        if request.right != Right.PORTABILITY:
            raise ForwardingError(why_not_forwardable(request))
        if to_controller.pk == request.controller_id:
            raise ForwardingError(
                f"{to_controller.name} sent this file: choose another organisation to send it to."
            )
        if not to_controller.email:
            raise ForwardingError(
                f"We have no email address for {to_controller.name}, so we cannot send it the file. "
                "Choose another organisation, or ask the coordinators to add its address."
            )
        earlier = PortabilityForward.objects.filter(file=received, to_controller=to_controller).first()
        if earlier is not None:
            raise ForwardingError(
                f"“{received.original_name}” was already sent to {to_controller.name} on "
                f"{timezone.localtime(earlier.requested_at):%d %B %Y}."
            )
        mandate = _mandate_for(member, to_controller, request)
        try:
            data = returned_files.received_file_data(received)
        except crypto.CryptoError:
            logger.exception("Returned file %s could not be read for a forward.", received.pk)
            raise ForwardingError(
                f"We could not read “{received.original_name}”, so it was not sent. Please tell the "
                "coordinators."
            ) from None
        authority = authority_issue(mandate=mandate, controller=to_controller)
        message = outbox.queue_email(
            to=[to_controller.email],
            reply_to=[request.member.community.contact_email],
            subject=(
                f"Data portability (Article 20(2) UK GDPR): data of {member.full_name} "
                f"from {request.controller.name}"
            ),
            body_text=_covering_letter(request, received, to_controller, member, authority),
            attachments=[
                (received.original_name, data, received.content_type),
                (authority_filename(authority), authority_pdf(authority), "application/pdf"),
            ],
            subject_type="request",
            subject_id=str(request.pk),
            purpose=PURPOSE,
        )
        try:
            with transaction.atomic():
                forward = PortabilityForward.objects.create(
                    file=received, to_controller=to_controller, message=message
                )
        except IntegrityError:  # a racing ask for the same pair won (the unique constraint)
            raise ForwardingError(
                f"“{received.original_name}” is already being sent to {to_controller.name}."
            ) from None
        record_event(
            subject=request,
            kind="request.portability_forwarded",
            actor=actor,
            payload={
                "file": received.pk,
                "sha256": received.sha256,
                "to_controller": to_controller.slug,
                "message_id": message.message_id,
            },
        )
    return forward


def _covering_letter(
    request: DataRightsRequest,
    received: ReceivedFile,
    to_controller: Controller,
    member: Member,
    authority: Authority,
) -> str:
    community = request.member.community
    identifiers = disclosed_identifiers(to_controller, [member.pk]).get(member.pk, [])
    return render_to_string(
        "requests_engine/letters/portability_forward.txt",
        {
            "request": request,
            "file": received,
            "to_controller": to_controller,
            "member": member,
            "mandate": authority.mandate,
            "identifiers": identifiers,
            "community": community,
            **letterhead(community),
            "verify_url": authority_url(authority),
            "today": timezone.localdate(),
        },
    )


@dataclass(frozen=True)
class ForwardStatus:
    forward: PortabilityForward
    status: str  # the outbox row's status
    words: str


_WORDS = {
    OutboundMessage.Status.QUEUED: "Waiting to be sent",
    OutboundMessage.Status.SENDING: "Being sent",
    OutboundMessage.Status.SENT: "Sent: their mail server accepted it",
    OutboundMessage.Status.FAILED: "Not delivered: the coordinators will look into it",
}


def forwards_of(request: DataRightsRequest) -> list[ForwardStatus]:
    """The forwards asked for this request's files, newest first, with their delivery status."""
    forwards = (
        PortabilityForward.objects.filter(file__request=request)
        .select_related("file", "to_controller", "message")
        .order_by("-requested_at", "-pk")
    )
    result = []
    for forward in forwards:
        status = forward.message.status if forward.message else OutboundMessage.Status.FAILED
        result.append(ForwardStatus(forward, status, _WORDS.get(OutboundMessage.Status(status), str(status))))
    return result
