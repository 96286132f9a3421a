from django.core.management.base import BaseCommand, CommandError, CommandParser

from core import crypto


class Command(BaseCommand):
    help = (
        "Re-encrypt every encrypted file with the newest key in FIELD_ENCRYPTION_KEYS (put the new key "
        "first, run this, then remove the old key). Safe to run again: files already on the newest key "
        "are skipped."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--generate-key", action="store_true", help="only print a fresh key to put first in the list"
        )

    def handle(self, *args, **options) -> None:
        if options["generate_key"]:
            self.stdout.write(crypto.generate_key())
            return
        report = crypto.rotate_stored_files(progress=self.stdout.write)
        self.stdout.write(str(report))
        if report.failed:
            raise CommandError(f"{len(report.failed)} file(s) could not be re-encrypted (listed above).")
