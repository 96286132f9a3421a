from django.core.management.base import BaseCommand, CommandError

from requests_engine.audit.checkpoints import checkpoint_write
from requests_engine.audit.verification import audit_verify


class Command(BaseCommand):
    help = (
        "Write a sealed checkpoint of every event history's head and count to AUDIT_CHECKPOINT_DIR (and "
        "email it to AUDIT_CHECKPOINT_EMAIL), after checking the history; refused if the check fails."
    )

    def handle(self, *args, **options):
        report = audit_verify()
        if not report.intact:
            # Sealing a history that fails its check would make the damage the new reference.
            raise CommandError(f"not checkpointed: audit log broken at {report.problems[0]}", returncode=1)
        checkpoint = checkpoint_write()
        totals = checkpoint.totals
        self.stdout.write(
            f"checkpoint {checkpoint.name}: {totals['streams']} histories, {totals['events']} events."
        )
