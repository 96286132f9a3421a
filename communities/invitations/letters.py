"""Invitations by letter, for people on the list without an email address: a print pack of one letter per
person, with their address for a window envelope, the join link and a QR code of it."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from communities.invitations.imports import join_link
from communities.models import Invitation
from core.pdf import qr_svg, render_pdf


def letters_pdf(invitations: Sequence[Invitation]) -> bytes:
    letters = [
        {"invitation": i, "link": join_link(i.invite), "qr": qr_svg(join_link(i.invite))} for i in invitations
    ]
    return render_pdf(render_to_string("communities/invitations/letters.html", {"letters": letters}))


def letters_print(*, invitation_ids: Sequence[int]) -> tuple[bytes, int]:
    """The print pack of these invitations' letters; those not printed before are marked sent today.
    Returns (PDF, how many letters)."""
    with transaction.atomic():
        invitations = list(
            Invitation.objects.select_for_update()
            .select_related("community", "invite__community")
            .filter(pk__in=invitation_ids, channel=Invitation.Channel.POST)
            .order_by("name", "pk")
        )
        pdf = letters_pdf(invitations)
        Invitation.objects.filter(pk__in=[i.pk for i in invitations], sent_at=None).update(
            sent_at=timezone.now()
        )
    return pdf, len(invitations)
