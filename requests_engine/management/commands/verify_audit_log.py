from django.core.management.base import BaseCommand, CommandError

from requests_engine.events import find_chain_breaks


class Command(BaseCommand):
    help = "Check the hash chain of the event history; exit non-zero naming the first broken record."

    def handle(self, *args, **options):
        breaks = find_chain_breaks()
        if breaks:
            more = f" (and {len(breaks) - 1} more)" if len(breaks) > 1 else ""
            raise CommandError(f"audit log broken at {breaks[0]}{more}", returncode=1)
        self.stdout.write("audit log intact.")
