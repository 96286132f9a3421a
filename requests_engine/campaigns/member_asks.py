"""One notice per member asking for what a campaign needs from them, sent at most once a day."""

from __future__ import annotations

from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from communities.models import Member
from communities.notices import notify_member
from requests_engine.models import Campaign


def members_ask(
    *,
    campaign: Campaign,
    asks: dict[int, tuple[Member, set[str]]],
    subject: str,
    template: str,
    url_name: str,
    purpose: str,
) -> int:
    """Notify each member of `asks` (emailed at once or in their digest) with the sorted lines asked of them
    and a link to `url_name`. Returns how many were asked; asking twice on one day sends nothing new."""
    start_of_day = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    asked = 0
    with transaction.atomic():
        for member, lines in asks.values():
            notice = notify_member(
                member,
                f"{campaign.name}: {subject}",
                render_to_string(template, {"member": member, "campaign": campaign, "lines": sorted(lines)}),
                reverse(url_name, args=[member.reference]),
                purpose=purpose,
                once_since=start_of_day,
            )
            asked += notice is not None
    return asked
