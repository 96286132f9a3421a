from django.core.management.base import BaseCommand

from requests_engine import services


class Command(BaseCommand):
    help = "Mark requests whose statutory deadline has passed as overdue (safe to run at any time, twice)."

    def handle(self, *args, **options):
        moved = services.sweep_deadlines()
        self.stdout.write(f"{moved} request(s) marked overdue.")
