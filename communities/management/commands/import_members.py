from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from communities.invitations import imports
from communities.models import Community


class Command(BaseCommand):
    help = (
        "Import a community's membership list (CSV with a header: name, email and/or postal address, "
        "optionally membership number) and invite everyone new on it: by email, or by a letter printed "
        "from the admin's invitations list. --dry-run reports and changes nothing; importing the same list "
        "again changes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="the CSV file (UTF-8)")
        parser.add_argument("--community", required=True, help="the community's slug")
        parser.add_argument("--dry-run", action="store_true", help="check and report; invite nobody")

    def handle(self, *args, file, community, dry_run, **options):
        found = Community.objects.filter(slug=community).first()
        if found is None:
            raise CommandError(f"No community has the slug {community!r}.")
        try:
            text = Path(file).read_bytes().decode("utf-8-sig")
        except OSError as error:
            raise CommandError(f"Cannot read {file}: {error.strerror or error}.") from None
        except UnicodeDecodeError:
            raise CommandError(f"{file} is not UTF-8 text: save it as CSV UTF-8.") from None
        try:
            report = imports.invitations_import(community=found, text=text, dry_run=dry_run)
        except imports.ListRefused as refused:
            raise CommandError(str(refused)) from None
        for line, reason in report.rejected:
            self.stdout.write(f"line {line}: refused: {reason}")
        for line, reason in report.duplicates:
            self.stdout.write(f"line {line}: duplicate: {reason}")
        self.stdout.write(("Dry run: " if dry_run else "") + str(report))
