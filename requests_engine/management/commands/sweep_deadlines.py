from django.core.management.base import BaseCommand

from requests_engine import sweep
from requests_engine.notices import reminders


class Command(BaseCommand):
    help = "Mark requests whose statutory deadline has passed as overdue (safe to run at any time, twice)."

    def handle(self, *args, **options):
        moved = sweep.deadlines_sweep()
        notices = reminders.overdue_notices_send()
        reminded = reminders.deadline_reminders_send()
        self.stdout.write(
            f"{moved} request(s) marked overdue; {notices} overdue notice(s) and {reminded} reminder(s) queued."
        )
