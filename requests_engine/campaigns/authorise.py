"""Asking members to authorise what a campaign needs and their mandate does not name: a controller or a
purpose the community added after they signed, or a right they did not choose. They are never included
until they sign a replacement mandate that names it (DESIGN §2)."""

from __future__ import annotations

from communities.models import Member, Right
from core.audit import Actor
from requests_engine.campaigns.eligibility import not_authorised
from requests_engine.campaigns.member_asks import members_ask
from requests_engine.models import Campaign


def campaign_ask_to_authorise(*, campaign_id: int, actor: Actor) -> int:
    """A notice to each member in force whose mandate does not cover some controller × right of the
    campaign, saying what is asked and linking to the change-mandate page. Returns how many were asked;
    asking twice on one day sends nothing new."""
    campaign = Campaign.objects.select_related("community", "purpose").get(pk=campaign_id)
    asks: dict[int, tuple[Member, set[str]]] = {}
    for controller in campaign.controllers.order_by("name"):
        for right in campaign.rights:
            for member in not_authorised(campaign, controller, right):
                line = f"{Right(right).label} with {controller.name}"
                asks.setdefault(member.pk, (member, set()))[1].add(line)
    return members_ask(
        campaign=campaign,
        asks=asks,
        subject=f"may {campaign.community.name} act for you?",
        template="requests_engine/email/authority_needed.txt",
        url_name="mandate-new",
        purpose="campaign.authority_needed",
    )
