from django.core.management.base import BaseCommand, CommandError, CommandParser

from requests_engine.exceptions import RequestEngineError
from requests_engine.responses import inbound


class Command(BaseCommand):
    help = (
        "Read new replies from the community's mailbox (INBOUND_IMAP_*), store them encrypted and match "
        "them to their batch or request. Safe to run again: a message is never stored twice."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--limit", type=int, default=None, help="read at most this many new messages")

    def handle(self, *args, **options) -> None:
        try:
            report = inbound.mailbox_poll(limit=options["limit"])
        except RequestEngineError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(str(report))
        for error in report.errors:
            self.stderr.write(error)
        if report.failed:
            raise CommandError(f"{report.failed} message(s) could not be read; the next poll retries them.")
