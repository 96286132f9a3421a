"""`manage.py import_controllers FILE.json [--dry-run]`: load the controller directory (datenanfragen)."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from requests_engine.directory.controller_import import controller_records, controllers_import
from requests_engine.exceptions import ControllerImportError

# Exit status when the file itself cannot be used (nothing is imported).
BAD_FILE = 2


class Command(BaseCommand):
    help = (
        "Create or update controllers from a JSON file of datenanfragen.de company records (a list, or "
        'an object with a "records" list), matched by slug; re-importing the same file changes nothing. '
        "Prints 'created N, updated N, unchanged N, rejected N', then one line per rejected record on "
        "stderr. Exit status: 0 when the file was read, even if some records were rejected (they are "
        "skipped and reported, the others imported); 2 when the file is missing, unreadable or malformed "
        "(nothing changes)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", metavar="FILE.json", help="the records to import")
        parser.add_argument(
            "--dry-run", action="store_true", help="report what would change, then roll everything back"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            records = controller_records(options["file"])
        except ControllerImportError as exc:
            raise CommandError(str(exc), returncode=BAD_FILE) from exc

        with transaction.atomic():
            report = controllers_import(records)
            if options["dry_run"]:
                transaction.set_rollback(True)

        self.stdout.write(report.summary())
        for identifier, reason in report.rejected:
            self.stderr.write(f"rejected {identifier}: {reason}")
        if options["dry_run"]:
            self.stdout.write("Dry run: rolled back, nothing was saved.")
