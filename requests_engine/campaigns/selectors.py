"""Reads for coordinators that are more than a filter: the campaign preview and its progress."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Count, Exists, OuterRef, Q

from communities.models import Identifier, Member, Right
from requests_engine.campaigns.eligibility import awaiting_confirmation, eligible_members, not_authorised
from requests_engine.models import Batch, Campaign, Controller, DataRightsRequest


@dataclass
class PreviewRow:
    controller: Controller
    right: str
    eligible: int
    missing_identifiers: list[Member] = field(default_factory=list)
    missing_count: int = 0
    not_authorised: int = 0  # members in force whose mandate does not name this controller/right/purpose
    to_confirm: int = 0  # erasure or objection authorised but not (yet) confirmed for this campaign

    @property
    def right_label(self) -> str:
        return Right(self.right).label


def campaign_preview(campaign: Campaign, *, sample: int = 10) -> list[PreviewRow]:
    """Per controller and right: how many members a launch would include, how many have not authorised
    it (never included; they can be asked), and who lacks an identifier the controller needs (an
    identifier given for it, or a general email address when it asks for email)."""
    rows = []
    for controller in campaign.controllers.order_by("name"):
        for right in campaign.rights:
            eligible = eligible_members(campaign, controller, right)
            has_identifier = Identifier.objects.filter(member=OuterRef("pk")).filter(
                Q(controller=controller) | Q(controller__isnull=True, kind=Identifier.Kind.EMAIL)
            )
            missing = eligible.exclude(Exists(has_identifier))
            rows.append(
                PreviewRow(
                    controller=controller,
                    right=right,
                    eligible=eligible.count(),
                    missing_identifiers=list(missing.order_by("full_name")[:sample]),
                    missing_count=missing.count(),
                    not_authorised=not_authorised(campaign, controller, right).count(),
                    to_confirm=awaiting_confirmation(campaign, controller, right).count(),
                )
            )
    return rows


@dataclass
class Progress:
    batches_total: int
    batches_sent: int
    batches_failed: int
    requests_by_state: list[tuple[str, str, int]]
    requests_total: int
    batches_held: int = 0

    @property
    def percent_sent(self) -> int:
        return round(100 * self.batches_sent / self.batches_total) if self.batches_total else 0


def campaign_progress(campaign: Campaign) -> Progress:
    batches = Batch.objects.filter(campaign=campaign).aggregate(
        # A held batch (erasures waiting for the access answers, sequencing.py) is not yet one to send.
        total=Count("pk", filter=~Q(state=Batch.State.HELD)),
        held=Count("pk", filter=Q(state=Batch.State.HELD)),
        sent=Count("pk", filter=Q(state=Batch.State.SENT)),
        failed=Count("pk", filter=Q(state=Batch.State.FAILED)),
    )
    labels = dict(DataRightsRequest._meta.get_field("state").choices)
    counts = (
        DataRightsRequest.objects.filter(campaign=campaign)
        .values("state")
        .annotate(n=Count("pk"))
        .order_by("state")
    )
    by_state = [(row["state"], labels.get(row["state"], row["state"]), row["n"]) for row in counts]
    return Progress(
        batches_total=batches["total"],
        batches_sent=batches["sent"],
        batches_failed=batches["failed"],
        batches_held=batches["held"],
        requests_by_state=by_state,
        requests_total=sum(n for _, _, n in by_state),
    )
