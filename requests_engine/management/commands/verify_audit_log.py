from django.core.management.base import BaseCommand, CommandError
from django.db.models import Exists, OuterRef

from communities.models import Mandate, Member
from requests_engine.events import find_chain_breaks
from requests_engine.models import DataRightsRequest


def requests_missing_their_evidence() -> list[str]:
    """References of requests whose mandate or member row is gone. The database does not enforce these
    keys (see DataRightsRequest), so this check stands in for it."""
    has_mandate = Exists(Mandate.objects.filter(pk=OuterRef("mandate_id")))
    has_member = Exists(Member.objects.filter(pk=OuterRef("member_id")))
    missing = DataRightsRequest.objects.filter(~has_mandate | ~has_member)
    return list(missing.order_by("pk").values_list("reference", flat=True)[:20])


class Command(BaseCommand):
    help = (
        "Check the hash chain of the event history and that every request still has its mandate and "
        "member; exit non-zero naming the first broken record."
    )

    def handle(self, *args, **options):
        breaks = find_chain_breaks()
        if breaks:
            more = f" (and {len(breaks) - 1} more)" if len(breaks) > 1 else ""
            raise CommandError(f"audit log broken at {breaks[0]}{more}", returncode=1)
        orphans = requests_missing_their_evidence()
        if orphans:
            more = " (and more)" if len(orphans) > 1 else ""
            raise CommandError(f"request {orphans[0]} has lost its mandate or member{more}", returncode=1)
        self.stdout.write("audit log intact.")
