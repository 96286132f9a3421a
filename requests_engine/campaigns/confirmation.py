"""Irreversible steps, confirmed: before a campaign sends erasure (Art 17) or objection (Art 21) requests in a
member's name, the member is told exactly what will be asked of whom and why, and says yes or no.

Only a confirmed answer (or a mandate that says "send them without asking me each time") lets the launch
include the member for those rights (eligibility.covered_mandates). Silence by the campaign's confirmation
date counts as no; one reminder goes out two days before it.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from communities.models import IRREVERSIBLE_RIGHTS, Member, Right
from communities.notices import notify_member
from core.audit import Actor
from requests_engine.campaigns.eligibility import authorised_mandates
from requests_engine.events import record_event
from requests_engine.exceptions import RequestEngineError
from requests_engine.models import Campaign, Confirmation, ObjectionTo

# Long enough for a member on a digest to read it and for the reminder to come first.
MIN_DAYS_TO_CONFIRM = 5
DEFAULT_DAYS_TO_CONFIRM = 14
REMIND_DAYS_BEFORE = 2


def _today() -> datetime.date:
    return timezone.localdate()


def irreversible_rights(campaign: Campaign) -> list[str]:
    return [r for r in campaign.rights if r in IRREVERSIBLE_RIGHTS]


def members_to_confirm(campaign: Campaign) -> QuerySet[Member]:
    """Members the campaign is authorised to send an erasure or objection request for, whose mandate asks
    to be asked each time."""
    asked = Member.objects.none()
    for right in irreversible_rights(campaign):
        for controller_id in campaign.controllers.values_list("pk", flat=True):
            mandates = authorised_mandates(campaign=campaign, controller_id=controller_id, right=right)
            asked |= Member.objects.filter(
                Exists(mandates.filter(member=OuterRef("pk"), irreversible_without_asking=False))
            )
    return asked.distinct()


@dataclass(frozen=True)
class Ask:
    """What one member is asked to confirm: each request, and why."""

    lines: list[str]  # "Erasure (Art 17) from Acme Ltd"
    purpose: str
    note: str


def ask_for(confirmation: Confirmation) -> Ask:
    campaign, member = confirmation.campaign, confirmation.member
    lines = []
    for right in irreversible_rights(campaign):
        for controller in campaign.controllers.order_by("name"):
            mandates = authorised_mandates(campaign=campaign, controller_id=controller.pk, right=right)
            if mandates.filter(member=member).exists():
                verb = (
                    "delete your personal data"
                    if right == Right.ERASURE
                    else "stop using your data for direct marketing"
                    if campaign.objection_to == ObjectionTo.DIRECT_MARKETING
                    else "stop using your data"
                )
                lines.append(f"{controller.name}: {verb} ({Right(right).label})")
    assert campaign.purpose is not None
    return Ask(lines=lines, purpose=campaign.purpose.text, note=campaign.member_note)


def _notify(confirmation: Confirmation, *, reminder: bool) -> None:
    campaign = confirmation.campaign
    assert campaign.confirm_by is not None
    subject = (
        f"Reminder: confirm or decline by {campaign.confirm_by:%-d %B}: {campaign.name}"
        if reminder
        else f"{campaign.name}: do you want these requests sent? They cannot be undone"
    )
    notify_member(
        confirmation.member,
        subject,
        render_to_string(
            "requests_engine/email/confirmation_needed.txt",
            {
                "member": confirmation.member,
                "campaign": campaign,
                "ask": ask_for(confirmation),
                "reminder": reminder,
            },
        ),
        reverse("confirmation", args=[confirmation.token]),
        purpose="campaign.confirmation_reminder" if reminder else "campaign.confirmation_needed",
    )


def campaign_ask_to_confirm(*, campaign_id: int, confirm_by: datetime.date, actor: Actor) -> int:
    """Ask each member concerned to confirm the campaign's erasure or objection requests by `confirm_by`.
    Asking again (a later date, new members) asks only those not asked yet. Returns how many were asked."""
    with transaction.atomic():
        campaign = (
            Campaign.objects.select_for_update(of=("self",))
            .select_related("community", "purpose")
            .get(pk=campaign_id)
        )
        if campaign.state != Campaign.State.DRAFT:
            raise RequestEngineError("Members can be asked to confirm only before the campaign is launched.")
        if not irreversible_rights(campaign):
            raise RequestEngineError("This campaign asks for no erasure or objection: nothing to confirm.")
        earliest = _today() + datetime.timedelta(days=MIN_DAYS_TO_CONFIRM)
        if confirm_by < earliest:
            raise RequestEngineError(
                f"Give members until {earliest:%-d %B %Y} at least, so they can read the notice and be "
                "reminded once."
            )
        campaign.confirm_by = max(confirm_by, campaign.confirm_by or confirm_by)
        campaign.save(update_fields=["confirm_by"])
        asked = []
        for member in members_to_confirm(campaign).exclude(confirmations__campaign=campaign):
            asked.append(Confirmation.objects.create(campaign=campaign, member=member))
        for confirmation in asked:
            _notify(confirmation, reminder=False)
        record_event(
            subject=campaign,
            kind="campaign.confirmation_asked",
            actor=actor,
            payload={"members": len(asked), "confirm_by": campaign.confirm_by.isoformat()},
        )
    return len(asked)


def confirmation_answer(
    *,
    token: str,
    member: Member,
    confirm: bool,
    actor: Actor,
    erasure_at_once: bool = False,
    objection_situation: str = "",
) -> Confirmation:
    """The member's yes or no. They may change their mind until the confirmation date, while the campaign
    is not launched; after that the answer stands as it was. With a yes, `erasure_at_once` sends an erasure
    without waiting for the same campaign's access answer (campaigns/sequencing.py)."""
    with transaction.atomic():
        confirmation = (
            Confirmation.objects.select_for_update()
            .select_related("campaign")
            .filter(token=token, member=member)
            .first()
        )
        if confirmation is None:
            raise RequestEngineError("This confirmation link is not yours, or no longer exists.")
        # The campaign's row lock orders its events (record_event).
        campaign = Campaign.objects.select_for_update().get(pk=confirmation.campaign_id)
        assert campaign.confirm_by is not None
        if campaign.state != Campaign.State.DRAFT or _today() > campaign.confirm_by:
            raise RequestEngineError(
                f"The time to answer ended on {campaign.confirm_by:%-d %B %Y}; your answer then stands: "
                f"{confirmation.get_state_display().lower()}."
            )
        confirmation.state = Confirmation.State.CONFIRMED if confirm else Confirmation.State.DECLINED
        confirmation.answered_at = timezone.now()
        confirmation.erasure_at_once = confirm and erasure_at_once
        situation = " ".join(objection_situation.split())
        if len(situation) > 1000:
            raise RequestEngineError("Say your particular situation in 1,000 characters or fewer.")
        confirmation.objection_situation = situation if confirm else ""
        confirmation.save(update_fields=["state", "answered_at", "erasure_at_once", "objection_situation"])
        record_event(
            subject=campaign,
            kind="campaign.confirmed" if confirm else "campaign.declined",
            actor=actor,
            payload={
                "member": member.reference,
                **({"erasure_at_once": True} if confirmation.erasure_at_once else {}),
            },
        )
    return confirmation


def confirmations_remind(*, today: datetime.date | None = None) -> int:
    """Once, two days before the confirmation date, remind members who have not answered. Returns how many."""
    today = today or _today()
    due = Confirmation.objects.select_related("campaign__purpose", "member").filter(
        state=Confirmation.State.PENDING,
        reminded_at__isnull=True,
        campaign__state=Campaign.State.DRAFT,
        campaign__confirm_by__gte=today,
        campaign__confirm_by__lte=today + datetime.timedelta(days=REMIND_DAYS_BEFORE),
    )
    reminded = 0
    for confirmation in due:
        with transaction.atomic():
            # The row is claimed first, so two sweeps on one day remind once.
            if not Confirmation.objects.filter(pk=confirmation.pk, reminded_at__isnull=True).update(
                reminded_at=timezone.now()
            ):
                continue
            _notify(confirmation, reminder=True)
            reminded += 1
    return reminded


def launch_problem(campaign: Campaign) -> str:
    """Why the campaign may not launch yet because members still have time to confirm, or ""."""
    if not irreversible_rights(campaign):
        return ""
    unasked = members_to_confirm(campaign).exclude(confirmations__campaign=campaign)
    if unasked.exists():
        return (
            f"{unasked.count()} member(s) have not been asked to confirm the erasure or objection requests. "
            "Ask them first: nothing that cannot be undone is sent without their yes."
        )
    pending = campaign.confirmations.filter(state=Confirmation.State.PENDING)
    if campaign.confirm_by and _today() <= campaign.confirm_by and pending.exists():
        return (
            f"Members have until {campaign.confirm_by:%-d %B %Y} to confirm ({pending.count()} not answered "
            "yet). Launch after that date, or once every member has answered."
        )
    return ""
