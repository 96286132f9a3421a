"""Asking members for the identifiers a campaign's controllers need."""

from __future__ import annotations

from communities.models import Member
from core.audit import Actor
from requests_engine.campaigns.member_asks import members_ask
from requests_engine.campaigns.selectors import campaign_preview
from requests_engine.models import Campaign


def campaign_ask_for_identifiers(*, campaign_id: int, actor: Actor) -> int:
    """Ask each member a launch would include who has not said how a campaign's controller knows them.
    Returns how many members were asked; asking twice on the same day sends nothing new."""
    campaign = Campaign.objects.select_related("community").get(pk=campaign_id)
    missing: dict[int, tuple[Member, set[str]]] = {}
    for row in campaign_preview(campaign, sample=100_000):
        for member in row.missing_identifiers:
            missing.setdefault(member.pk, (member, set()))[1].add(row.controller.name)
    return members_ask(
        campaign=campaign,
        asks=missing,
        subject="how do these organisations know you?",
        template="requests_engine/email/identifiers_needed.txt",
        url_name="member-identifiers",
        purpose="campaign.identifiers_needed",
    )
