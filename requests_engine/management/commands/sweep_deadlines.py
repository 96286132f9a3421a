from django.core.management.base import BaseCommand

from requests_engine import tasks


class Command(BaseCommand):
    help = "Mark requests whose statutory deadline has passed as overdue (safe to run at any time, twice)."

    def handle(self, *args, **options):
        # The same steps as the beat's task, so the command and the schedule cannot drift apart.
        done = tasks.sweep_deadlines()
        self.stdout.write(
            f"{done['overdue']} request(s) marked overdue; {done['notices']} overdue notice(s) and "
            f"{done['reminders']} reminder(s) queued; {done['confirmation_reminders']} member(s) reminded "
            "to confirm."
        )
