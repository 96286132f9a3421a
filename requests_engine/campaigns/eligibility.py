"""Who a campaign may act for: the one place that decides whether a member's mandate covers a request.

Launch, the preview, re-queueing a request, portability forwarding and completeness follow-ups all ask
here, so no path can make or re-send a request the member did not authorise (DESIGN §2, "Authority").
"""

from __future__ import annotations

import datetime

from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from communities.models import IRREVERSIBLE_RIGHTS, Mandate, Member
from requests_engine.exceptions import RequestEngineError
from requests_engine.models import Campaign, Confirmation, Controller, DataRightsRequest


def _today() -> datetime.date:
    return timezone.localdate()


def scope_problem(campaign: Campaign) -> str:
    """Why the campaign reaches outside the community's own lists, or "" when it does not."""
    if campaign.purpose is None:
        return "Choose the purpose of the campaign, from the community's purposes."
    if campaign.purpose.community_id != campaign.community_id:
        return f"The purpose “{campaign.purpose}” is not one of {campaign.community}'s purposes."
    outside = campaign.controllers.exclude(communities=campaign.community).order_by("name")
    names = [c.name for c in outside[:5]]
    if names:
        return (
            f"{', '.join(names)} {'is' if len(names) == 1 else 'are'} not among the organisations "
            f"{campaign.community} acts towards. Add them to the community's list first; members must then "
            "authorise them before any request is sent."
        )
    return ""


def authorised_mandates(
    *, campaign: Campaign, controller_id: int, right: str, on: datetime.date | None = None
) -> QuerySet[Mandate]:
    """The mandates that authorise this campaign to make a request to this controller for this right: the
    member is still in the community, and the mandate in force names the controller, the right and the
    campaign's purpose (Mandate.objects.covering). Nothing when the campaign reaches outside the
    community's lists."""
    if scope_problem(campaign) or right not in campaign.rights:
        return Mandate.objects.none()
    assert campaign.purpose_id is not None  # scope_problem checked it
    return Mandate.objects.covering(
        controller_id=controller_id, right=right, purpose_id=campaign.purpose_id, on=on or _today()
    ).filter(member__community_id=campaign.community_id, member__left_at__isnull=True)


def covered_mandates(
    *, campaign: Campaign, controller_id: int, right: str, on: datetime.date | None = None
) -> QuerySet[Mandate]:
    """The mandates under which the campaign may make the request: authorised and, for erasure or objection
    (which cannot be undone, Art 17 and Art 21 UK GDPR), confirmed by the member for this campaign or
    pre-authorised on the mandate ("send them without asking me each time")."""
    mandates = authorised_mandates(campaign=campaign, controller_id=controller_id, right=right, on=on)
    if right not in IRREVERSIBLE_RIGHTS:
        return mandates
    confirmed = Confirmation.objects.filter(
        campaign=campaign, member=OuterRef("member_id"), state=Confirmation.State.CONFIRMED
    )
    return mandates.filter(Q(irreversible_without_asking=True) | Exists(confirmed))


def eligible_members(campaign: Campaign, controller: Controller, right: str) -> QuerySet[Member]:
    mandates = covered_mandates(campaign=campaign, controller_id=controller.pk, right=right)
    return Member.objects.filter(Exists(mandates.filter(member=OuterRef("pk"))))


def not_authorised(campaign: Campaign, controller: Controller, right: str) -> QuerySet[Member]:
    """Members with a mandate in force whose mandate does not cover this controller, right and purpose:
    the ones to ask, never to include."""
    today = _today()
    in_force = Mandate.objects.filter(
        member=OuterRef("pk"), state=Mandate.State.ACTIVE, valid_from__lte=today, valid_until__gte=today
    )
    authorised = authorised_mandates(campaign=campaign, controller_id=controller.pk, right=right)
    return (
        Member.objects.filter(community_id=campaign.community_id, left_at__isnull=True)
        .filter(Exists(in_force))
        .exclude(Exists(authorised.filter(member=OuterRef("pk"))))
    )


def awaiting_confirmation(campaign: Campaign, controller: Controller, right: str) -> QuerySet[Member]:
    """Members who authorised this erasure or objection but have not confirmed it for this campaign (yet)."""
    if right not in IRREVERSIBLE_RIGHTS:
        return Member.objects.none()
    authorised = authorised_mandates(campaign=campaign, controller_id=controller.pk, right=right)
    covered = covered_mandates(campaign=campaign, controller_id=controller.pk, right=right)
    return Member.objects.filter(Exists(authorised.filter(member=OuterRef("pk")))).exclude(
        Exists(covered.filter(member=OuterRef("pk")))
    )


def request_covered(request: DataRightsRequest, *, on: datetime.date | None = None) -> bool:
    """Whether the member's mandate in force (the one the request cites, or the one that replaced it)
    still covers this request: asked before a request is re-sent or followed up, and when a mandate is
    replaced. A request outside any campaign (none is made today) is never covered."""
    if request.campaign is None:
        return False
    return (
        covered_mandates(
            campaign=request.campaign, controller_id=request.controller_id, right=request.right, on=on
        )
        .filter(member_id=request.member_id)
        .exists()
    )


def covered_requests(requests: QuerySet[DataRightsRequest], *, campaign: Campaign, controller_id: int):
    """Those of `requests` (one campaign, one controller) that the members' mandates in force still cover."""
    covered = Q(pk__in=[])
    for right in campaign.rights:
        mandates = covered_mandates(campaign=campaign, controller_id=controller_id, right=right)
        covered |= Q(right=right, member__in=mandates.values("member"))
    return requests.filter(covered)


def require_covered(request: DataRightsRequest, *, doing: str) -> None:
    if not request_covered(request):
        raise RequestEngineError(
            f"The member's mandate no longer covers request {request.reference} "
            f"({request.get_right_display()} with {request.controller.name}), so we cannot {doing}."
        )
