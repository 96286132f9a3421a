"""Asking members for the identifiers a campaign's controllers need."""

from __future__ import annotations

from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from communities.models import Member
from communities.notices import notify_member
from core.audit import Actor
from requests_engine.campaigns.selectors import campaign_preview
from requests_engine.models import (
    Campaign,
)


def campaign_ask_for_identifiers(*, campaign_id: int, actor: Actor) -> int:
    """Ask each member a launch would include who has not said how a campaign's controller knows them (a
    notice: emailed at once or in their digest). Returns how many members were asked. Asking twice on the
    same day sends nothing new."""

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
