from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from requests_engine.audit.verification import audit_verify


class Command(BaseCommand):
    help = (
        "Check the keyed hash chains of the event history against the latest sealed checkpoint, that each "
        "request's and mandate's state is its last event's, that each mandate's terms are those signed, and "
        "that every request's mandate, member, batch, campaign and controller still exist; exit non-zero "
        "naming the first broken record."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--checkpoint",
            type=Path,
            help="Compare with this checkpoint file (e.g. one kept from an email) instead of the latest.",
        )

    def handle(self, *args, **options):
        report = audit_verify(checkpoint_file=options["checkpoint"])
        if not report.intact:
            problems = report.problems
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise CommandError(f"audit log broken at {problems[0]}{more}", returncode=1)
        against = f" (checkpoint {report.checkpoint})" if report.checkpoint else ""
        self.stdout.write(f"audit log intact{against}.")
