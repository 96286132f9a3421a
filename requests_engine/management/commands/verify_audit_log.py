from django.core.management.base import BaseCommand, CommandError
from django.db.models import Exists, OuterRef, Q

from communities.models import Mandate, Member
from requests_engine.events import chain_breaks
from requests_engine.models import Batch, Campaign, Controller, DataRightsRequest


def requests_missing_their_evidence() -> list[str]:
    """References of requests whose mandate, member, batch, campaign or controller row is gone. The
    database's foreign keys refuse such rows; this catches what got past them (a restore with triggers off,
    an SQLite file edited by hand)."""
    gone = (
        ~Exists(Mandate.objects.filter(pk=OuterRef("mandate_id")))
        | ~Exists(Member.objects.filter(pk=OuterRef("member_id")))
        | ~Exists(Controller.objects.filter(pk=OuterRef("controller_id")))
        | (Q(batch_id__isnull=False) & ~Exists(Batch.objects.filter(pk=OuterRef("batch_id"))))
        | (Q(campaign_id__isnull=False) & ~Exists(Campaign.objects.filter(pk=OuterRef("campaign_id"))))
    )
    return list(
        DataRightsRequest.objects.filter(gone).order_by("pk").values_list("reference", flat=True)[:20]
    )


class Command(BaseCommand):
    help = (
        "Check the hash chain of the event history and that every request's mandate, member, batch, "
        "campaign and controller still exist; exit non-zero naming the first broken record."
    )

    def handle(self, *args, **options):
        breaks = chain_breaks()
        if breaks:
            more = f" (and {len(breaks) - 1} more)" if len(breaks) > 1 else ""
            raise CommandError(f"audit log broken at {breaks[0]}{more}", returncode=1)
        orphans = requests_missing_their_evidence()
        if orphans:
            more = " (and more)" if len(orphans) > 1 else ""
            raise CommandError(
                f"request {orphans[0]} has lost its mandate, member, batch, campaign or controller{more}",
                returncode=1,
            )
        self.stdout.write("audit log intact.")
