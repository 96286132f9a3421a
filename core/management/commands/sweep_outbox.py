from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from core import outbox


class Command(BaseCommand):
    help = (
        "Re-queue outbox emails a worker dropped: stuck in sending, or queued and never picked up "
        "(safe to run at any time, twice)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            type=float,
            default=getattr(settings, "OUTBOX_STUCK_AFTER_MINUTES", 15),
            metavar="MINUTES",
            help="how long a row must have been stuck (default: %(default)s)",
        )

    def handle(self, *args, **options) -> None:
        handled = outbox.requeue_stuck(older_than=timedelta(minutes=options["older_than"]))
        self.stdout.write(f"{handled} stuck email(s) re-queued or, after their last attempt, marked failed.")
